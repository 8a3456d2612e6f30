#!/usr/bin/env bash
# Nightly regression job: run the nightly suite, compare the new run with the last matching runs, write the report.
#
# Exit status: 0 no regression; 1 a case regressed or newly failed; 2 the comparison was refused (no matching
# history, another environment: the message says what differs); 3 the run folder was not found; 4 only the report
# failed; 5 no regression, but some stored input could not be read (named on stderr); anything else: the run
# itself failed.
#
# Environment (all optional):
#   SUITE    suite file                                  (default suites/nightly.yaml)
#   RESULTS  results folder that keeps the history       (default results; keep it between nights)
#   HISTORY  how many earlier runs make the baseline     (default 7)
#   HARNESS  the harness command                         (default harness)
# Under GitHub Actions the run folder is also exported as RUN_DIR for the later steps ($GITHUB_ENV).
set -euo pipefail

SUITE=${SUITE:-suites/nightly.yaml}
RESULTS=${RESULTS:-results}
HISTORY=${HISTORY:-7}
HARNESS=${HARNESS:-harness}

log=$(mktemp)
trap 'rm -f "$log"' EXIT

# 1. Measure. Failed cases are records (status oom/error/...), not a failed command; a non-zero exit here means
#    the run could not be made at all, and the job stops with it.
$HARNESS run "$SUITE" --out "$RESULTS" --no-progress --no-report | tee "$log"
run_dir=$(tail -n 1 "$log" | sed -n 's/^run folder: //p')
if [ -z "$run_dir" ] || [ ! -d "$run_dir" ]; then
  echo "nightly: no 'run folder: PATH' line at the end of the output of harness run" >&2
  exit 3
fi
if [ -n "${GITHUB_ENV:-}" ]; then
  echo "RUN_DIR=$run_dir" >> "$GITHUB_ENV"
fi

# 2. Compare with the last $HISTORY runs of this suite in the same environment. The suite's first night has no
#    history yet: say so and pass.
status=0
earlier=$(find "$(dirname "$run_dir")" -mindepth 2 -maxdepth 2 -name manifest.json | wc -l)
if [ "$earlier" -le 1 ]; then
  echo "nightly: first run of this suite under $RESULTS; nothing to compare with yet"
else
  $HARNESS compare --history "$HISTORY" --root "$RESULTS" "$run_dir" --fail-on regression || status=$?
fi

# 3. The report, whatever the comparison said: it is what a person opens to see why. Exit 5 means it was written
#    with some input skipped (named on stderr).
report_status=0
$HARNESS report "$run_dir" -o "$run_dir/report.html" || report_status=$?
if [ "$report_status" -ne 0 ] && [ "$report_status" -ne 5 ]; then
  echo "nightly: the report could not be written" >&2
  [ "$status" -ne 0 ] || status=4
fi

exit "$status"
