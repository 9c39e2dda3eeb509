#!/bin/sh
# Verdict agreement between `usher check|test rules` and promtool on the same
# files: check/*.yml (good_* must pass, bad_* must fail), every line of
# check/templates.txt wrapped into a rule file (verdicts compared), and
# unit/*.yml unit test files (pass_* must pass, fail_* must fail).
# usage: agree.sh USHER PROMTOOL DIR
# A missing promtool is a failure, not a skip.
usher=$1 promtool=$2 dir=$3
if ! command -v "$promtool" >/dev/null 2>&1; then
	echo "promtool not found ($promtool): install it (scripts/install-deps.sh)" >&2
	exit 1
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
total=0 agree=0 bad=0

verdict() { # command... -> 0 pass, 1 fail; anything else (a crash) never agrees
	"$@" >"$tmp/out" 2>&1
	rc=$?
	case $rc in 0 | 1) echo $rc ;; *) echo "exit$rc" ;; esac
}

compare() { # name expected(0|1|-) usher_verdict promtool_verdict
	total=$((total + 1))
	if [ "$3" = "$4" ] && { [ "$2" = - ] || [ "$2" = "$3" ]; }; then
		agree=$((agree + 1))
	else
		bad=$((bad + 1))
		echo "DISAGREE $1: usher=$3 promtool=$4 expected=$2"
	fi
}

for f in "$dir"/check/*.yml; do
	case $(basename "$f") in good_*) exp=0 ;; bad_*) exp=1 ;; *) exp=- ;; esac
	u=$(verdict "$usher" check rules "$f")
	p=$(verdict "$promtool" check rules "$f")
	compare "check $(basename "$f")" $exp $u $p
done

n=0
while IFS= read -r line; do
	case $line in '#'*|'') continue ;; esac
	n=$((n + 1))
	esc=$(printf '%s' "$line" | sed "s/'/''/g")
	printf "groups:\n- name: g\n  rules:\n  - alert: A\n    expr: up\n    annotations:\n      a: '%s'\n" \
		"$esc" >"$tmp/t$n.yml"
	u=$(verdict "$usher" check rules "$tmp/t$n.yml")
	p=$(verdict "$promtool" check rules "$tmp/t$n.yml")
	compare "template $n: $line" - $u $p
done <"$dir/check/templates.txt"

for f in "$dir"/unit/*.yml; do
	case $(basename "$f") in pass_*) exp=0 ;; fail_*) exp=1 ;; *) exp=- ;; esac
	u=$(verdict "$usher" test rules "$f")
	p=$(verdict "$promtool" test rules "$f")
	compare "test $(basename "$f")" $exp $u $p
done

echo "$agree of $total verdicts agree with promtool"
[ $bad -eq 0 ]
