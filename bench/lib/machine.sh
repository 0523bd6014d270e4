# bench/lib/machine.sh: the Markdown header of RESULTS.md: what ran, where, how.

# machine_header DATA_DIR COMMAND: prints the header.
machine_header() {
    local dir=$1 command=$2 dev fstype commit dirty
    dev=$(df --output=source "$dir" | tail -n 1)
    fstype=$(df --output=fstype "$dir" | tail -n 1)
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    # Tracked files with changes (untracked ones are not part of the build's inputs here).
    dirty=$(git -C "$ROOT" status --porcelain 2>/dev/null | awk '!/^\?\?/ { print $2 }' | paste -sd' ' -)
    cat <<HEADER
# Beacon vs etcd 3.4: side-by-side benchmark

Written by \`bench/run\`; do not edit by hand.

| | |
|---|---|
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| command | \`$command\` |
| git commit | \`$commit\`${dirty:+ plus uncommitted changes to: $dirty} |
| beacon | \`$BEACON\` (release build of this tree) |
| etcd | \`$ETCD\`, $("$ETCD" --version 2>/dev/null | head -n 1) |
| CPUs | $(nproc) × $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//') |
| memory | $(awk '/MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo) |
| kernel | $(uname -sr) |
| data dirs | \`$dir\` on $dev ($fstype$(disk_kind "$dev")) |
| synced writes | $(dsync_rate "$dir") |
| fd limit | $(ulimit -n) |
HEADER
}

# disk_kind DEV: ", <model>" when the kernel knows the disk's model (virtual disks often
# have none; the synced-write rate below says more about them anyway).
disk_kind() {
    local name=${1#/dev/} base model
    base=$(lsblk -no PKNAME "/dev/$name" 2>/dev/null | head -n 1)
    base=${base:-$name}
    model=$(tr -s ' ' 2>/dev/null <"/sys/block/$base/device/model" || true)
    if [[ -n $model ]]; then printf ', %s' "$model"; fi
}

# dsync_rate DIR: how many 4 KiB writes per second the data dir's disk takes when each
# must reach stable storage (dd oflag=dsync): the bound on any fsync-per-batch store.
dsync_rate() {
    local file=$1/dsync-probe secs
    secs=$(LC_ALL=C dd if=/dev/zero of="$file" bs=4k count=500 oflag=dsync 2>&1 \
        | awk '/copied/ { for (i = 1; i <= NF; i++) if ($i ~ /^s,?$/) print $(i - 1) }')
    rm -f "$file"
    awk -v s="$secs" 'BEGIN { if (s > 0) printf "%.0f/s, %.3f ms each (500 × 4 KiB, dd oflag=dsync)", 500 / s, s * 2; else print "unknown" }'
}
