#!/usr/bin/env bash
# Parse "--some-option value" / "--some-option=value" command-line options into the shell
# variables of the calling script (some_option=value). Source it after defining defaults:
#
#   stage=0; stop_stage=100; nj=2
#   . utils/parse_options.sh
#
# Only variables that already exist can be set (a typo is an error). "--help" prints the
# options and their current values. Positional arguments are left in "$@".

__po_help() {
  echo "Usage: $0 [options] [args]"
  echo "Options (default values):"
  for __po_v in ${__po_vars}; do
    printf '  --%s (default: %s)\n' "${__po_v//_/-}" "${!__po_v}"
  done
}

__po_vars=$(set -o posix; set | sed -n 's/^\([a-z][a-z0-9_]*\)=.*/\1/p' | grep -v '^__po' | tr '\n' ' ')
__po_rest=()
while [ $# -gt 0 ]; do
  case "$1" in
    --help|-h) __po_help; exit 0 ;;
    --*=*) __po_name=${1%%=*}; __po_value=${1#*=}; shift ;;
    --*)
      __po_name=$1
      if [ $# -lt 2 ]; then echo "$0: option $1 needs a value" >&2; exit 1; fi
      __po_value=$2; shift 2 ;;
    *) __po_rest+=("$1"); shift; continue ;;
  esac
  __po_var=${__po_name#--}; __po_var=${__po_var//-/_}
  if ! [[ " ${__po_vars} " == *" ${__po_var} "* ]]; then
    echo "$0: unknown option ${__po_name} (try --help)" >&2
    exit 1
  fi
  printf -v "${__po_var}" '%s' "${__po_value}"
done
set -- "${__po_rest[@]}"
unset __po_name __po_value __po_var
