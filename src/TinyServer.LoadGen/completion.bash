# Bash completion for the TinyServer programs, which list their own completions: System.CommandLine's [suggest]
# directive takes the cursor position and the command line, and prints one completion a line.
#
#   source src/TinyServer.LoadGen/completion.bash    # or the copy beside the built program; e.g. in ~/.bashrc
#   TinyServer.LoadGen --conn<TAB>                   # --connect-batch  --connect-timeout  --connections
#
# The program must be found as typed (on PATH, or a path to it). With no completion (a file name after --svg or
# --unix) bash completes file names.
_tinyserver_complete() {
    local IFS=$'\n'
    COMPREPLY=($("${COMP_WORDS[0]}" "[suggest:${COMP_POINT}]" "${COMP_LINE}" 2>/dev/null))
}

complete -o default -F _tinyserver_complete TinyServer.LoadGen
