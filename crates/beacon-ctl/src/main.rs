//! beaconctl: placeholder until issue 3 brings its commands.
fn main() {
    eprintln!("beaconctl: no commands yet");
    std::process::exit(2);
}
