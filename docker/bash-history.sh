# shellcheck shell=bash
# /etc/profile.d/clawdspace-history.sh (also sourced from /etc/bash.bashrc)
#
# Clawdspace: every interactive bash, of any user, keeps its history in the
# space's volume at /workspace/.bash_history, with a "#<epoch>" line before each
# command (HISTTIMEFORMAT='%s '), appended and flushed after every command so the
# node can ingest it while the shell is still open.
#
# Sourced by login shells (/etc/profile, which also sources /etc/bash.bashrc on
# Debian) and by interactive non-login shells (/etc/bash.bashrc), so it must be
# idempotent. It must also be harmless for sh/dash, which read /etc/profile.d too.

if [ -n "${BASH_VERSION:-}" ]; then
  case $- in
    *i*)
      __clawdspace_histfile=/workspace/.bash_history
      if [ -d /workspace ]; then
        if [ ! -e "$__clawdspace_histfile" ] && [ -w /workspace ]; then
          # Spaces run with all capabilities dropped, so even root cannot write a
          # 0600 file owned by uid 1001 (or the other way round). Create the
          # shared history file world-writable so every user of the space can
          # append to it.
          ( umask 000; : >>"$__clawdspace_histfile" ) 2>/dev/null
        fi
        if [ ! -w "$__clawdspace_histfile" ]; then
          # Not writable for this user (read-only volume, foreign 0600 file):
          # keep history in the home folder rather than print an error per prompt.
          __clawdspace_histfile=${HOME:-/tmp}/.bash_history
        fi
      else
        __clawdspace_histfile=${HOME:-/tmp}/.bash_history
      fi
      HISTFILE=$__clawdspace_histfile
      HISTTIMEFORMAT='%s '
      HISTSIZE=100000
      # Negative: never truncate the file (a truncation would rewrite it under
      # the history ingester).
      HISTFILESIZE=-1
      # Record every command, including duplicates and ones starting with a space.
      HISTCONTROL=
      unset HISTIGNORE
      shopt -s histappend
      shopt -s cmdhist
      # Flush after every command, keeping whatever PROMPT_COMMAND already does.
      case "${PROMPT_COMMAND:-}" in
        *"history -a"*) ;;
        '') PROMPT_COMMAND='history -a' ;;
        *) PROMPT_COMMAND="history -a; ${PROMPT_COMMAND}" ;;
      esac
      unset __clawdspace_histfile
      ;;
  esac
fi
