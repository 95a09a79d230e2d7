#!/usr/bin/env bash
# Mutation testing of the insulin advice's guards: mutmut (pinned in the `test` extra, configured under [tool.mutmut]
# in pyproject.toml) on vigil/glucose/advisor.py, vigil/glucose/therapy.py and the live recommendation filter
# (PatientGlucose.material_basal, .recommends and .undelivered in vigil/glucose/live.py), against the fast glucose
# tests. A few minutes on two cores. Prints killed and surviving mutants per file, then each survivor's change.
#
#   bash scripts/mutation_test.sh            # MUTMUT_CHILDREN=1 to leave a core free
set -euo pipefail
cd "$(dirname "$0")/.."  # mutmut 3 runs from the project directory and writes ./mutants
export PYTHONPATH="$PWD"  # the mutated copy must win over any installed vigil
rm -rf mutants            # a fresh run: no cached verdicts from older code or tests

targets=(
    "vigil.glucose.advisor.*"
    "vigil.glucose.therapy.*"
    "vigil.glucose.live.xǁPatientGlucoseǁmaterial_basal__mutmut_*"
    "vigil.glucose.live.xǁPatientGlucoseǁrecommends__mutmut_*"
    "vigil.glucose.live.xǁPatientGlucoseǁundelivered__mutmut_*"
)
log="$(mktemp)"
mutmut run --max-children "${MUTMUT_CHILDREN:-2}" "${targets[@]}" >"$log" 2>&1 || {
    tr '\r' '\n' <"$log" | tail -n 40
    exit 1
}
mv "$log" mutants/run.log
mutmut results --all true | grep -v ": not checked$" >mutants/results.txt

echo "mutants per file (killed includes timeouts):"
awk -F': ' '{
    split($1, name, "."); file = name[3] ".py"; files[file] = 1
    if ($2 == "killed" || $2 == "timeout") killed[file]++; else other[file]++
} END {
    for (f in files) printf "  %-12s killed %4d  survived or untested %4d\n", f, killed[f], other[f]
}' mutants/results.txt | sort
echo
echo "survivors:"
grep -v -E ": (killed|timeout)$" mutants/results.txt | while IFS= read -r line; do
    name="${line%%:*}"
    name="${name// /}"
    echo "== $name (${line##*: })"
    mutmut show "$name" | grep -E '^[-+][^-+]' || true
done
