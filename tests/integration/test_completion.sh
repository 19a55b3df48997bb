#!/usr/bin/env bash
# contrib/mdht.bash-completion against the binary's own help, so that it
# cannot drift from the code: the completion is sourced into this bash and
# called as bash calls it (COMP_WORDS, COMP_CWORD, _mdht), and
#
# 1. the first word completes to exactly the commands of `mdht --help`
#    (and --help, --version); `mdht help <TAB>` to the same commands;
# 2. for every command, `mdht CMD --<TAB>` completes to exactly the flags
#    of `mdht help CMD` (and --help), and after each flag that takes a
#    value (a METAVAR in the help) no flag is offered: the value comes;
# 3. --state completes directories only, --config and --control files,
#    --log-level and --log-format their words.
#
# usage: test_completion.sh path/to/mdht
set -u

MDHT=${1:?usage: test_completion.sh path/to/mdht}
SRC=$(cd "$(dirname "$0")/../.." && pwd)
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
failures=0
checks=0
fail() {
  echo "FAIL: $*" >&2
  failures=$((failures + 1))
}
ok() { checks=$((checks + 1)); }
same() { # what, got, want (word lists, any order)
  local g w
  g=$(tr ' ' '\n' <<<"$2" | sed '/^$/d' | sort | tr '\n' ' ')
  w=$(tr ' ' '\n' <<<"$3" | sed '/^$/d' | sort | tr '\n' ' ')
  if [ "$g" = "$w" ]; then ok; else fail "$1: completes [$g], help says [$w]"; fi
}

# shellcheck source=../../contrib/mdht.bash-completion
source "$SRC/contrib/mdht.bash-completion" || { echo "FAIL: cannot source" >&2; exit 1; }
complete -p mdht >/dev/null || fail "no 'complete -F _mdht mdht'"

# Completes the words given (the last one is the word under the cursor).
comp() {
  COMP_WORDS=(mdht "$@")
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMPREPLY=()
  _mdht
  echo "${COMPREPLY[*]}"
}

# 1. commands: the lines under "commands:" in `mdht --help`.
cmds=$("$MDHT" --help | sed -n '/^commands:/,/^$/p' | sed -n 's/^  \([a-z-]*\) .*/\1/p' | tr '\n' ' ')
[ -n "$cmds" ] || fail "no commands in mdht --help"
same "mdht <TAB>" "$(comp "")" "$cmds --help --version"
same "mdht help <TAB>" "$(comp help "")" "$cmds"

# 2. each command's flags; "help" has none of its own.
for c in $cmds; do
  [ "$c" = help ] && continue
  help=$("$MDHT" help "$c") || { fail "mdht help $c failed"; continue; }
  flags=$(sed -n 's/^  \(--[a-z0-9-]*\).*/\1/p' <<<"$help" | tr '\n' ' ')
  [ -n "$flags" ] || fail "no flags in mdht help $c"
  same "mdht $c --<TAB>" "$(comp "$c" --)" "$flags --help"
  # A flag with a METAVAR takes a value: after it, no flag is offered.
  valued=$(sed -n 's/^  \(--[a-z0-9-]*\) [^ ].*/\1/p' <<<"$help")
  for f in $valued; do
    got=$(comp "$c" "$f" "")
    case $got in
      *--*) fail "mdht $c $f <TAB> offers flags: $got" ;;
      *) ok ;;
    esac
  done
done

# 3. values.
mkdir -p "$TMP/dir1" && touch "$TMP/file1"
same "--state" "$(comp run --state "$TMP/")" "$TMP/dir1"
same "--config" "$(comp run --config "$TMP/")" "$TMP/dir1 $TMP/file1"
same "--control" "$(comp stats --control "$TMP/f")" "$TMP/file1"
same "--log-level" "$(comp run --log-level "")" "error warn info debug trace"
same "--log-format j" "$(comp run --log-format j)" "json"

echo "completion: commands [$cmds]; $checks checks, $failures failures"
[ $failures -eq 0 ]
