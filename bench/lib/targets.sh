# bench/lib/targets.sh: the "Targets of issue 15" section of RESULTS.md, which needs both
# bench/run's results (one member, restart) and bench/cluster's (three members, failover);
# whichever of the two runs last rewrites it from both results files.

# targets_section SOURCES RESULTS...: prints the section between its markers; SOURCES is
# a sentence saying where the figures come from.
targets_section() {
    local sources=$1 args=() results
    shift
    for results in "$@"; do args+=(--results "$results"); done
    echo "<!-- targets of issue 15: begin -->"
    "$BENCH" targets "${args[@]}" # ends with a blank line
    echo "$sources"
    echo "<!-- targets of issue 15: end -->"
}

# replace_targets_section RESULTS_MD SECTION_FILE: puts the section in RESULTS_MD in place
# of the old one, or before issue 3's targets when it has none yet.
replace_targets_section() {
    python3 - "$1" "$2" <<'PY'
import re, sys
results, section = sys.argv[1], open(sys.argv[2]).read().rstrip("\n") + "\n"
text = open(results).read()
pattern = re.compile(r"<!-- targets of issue 15: begin -->.*?<!-- targets of issue 15: end -->\n?", re.S)
if pattern.search(text):
    text = pattern.sub(lambda _: section, text, count=1)
else:
    match = re.search(r"^## Targets of (issue 3|the issue)$", text, re.M)
    at = match.start() if match else len(text)
    text = text[:at] + section + "\n" + text[at:]
open(results, "w").write(text)
PY
}
