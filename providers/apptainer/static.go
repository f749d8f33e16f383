package apptainer

// Static files of /.singularity.d. Apptainer's runtime sources env/*.sh in
// order and special-cases some of these names (10-docker2singularity.sh,
// 90-environment.sh, 99-base.sh); the action scripts are used by older
// runtimes and by `apptainer exec` of sandbox copies.

// sourceEnv is the loop every action script starts with.
const sourceEnv = `for script in /.singularity.d/env/*.sh; do
    if [ -f "$script" ]; then
        . "$script"
    fi
done
`

const actionExec = "#!/bin/sh\n\n" + sourceEnv + `
exec "$@"
`

const actionRun = "#!/bin/sh\n\n" + sourceEnv + `
if test -n "${APPTAINER_APPNAME:-}"; then
    if test -x "/scif/apps/${APPTAINER_APPNAME:-}/scif/runscript"; then
        exec "/scif/apps/${APPTAINER_APPNAME:-}/scif/runscript" "$@"
    elif test -x "/scif/apps/singularity/scif/runscript"; then
        exec "/scif/apps/singularity/scif/runscript" "$@"
    fi
    echo "No runscript for app: ${APPTAINER_APPNAME:-}"
    exit 1
elif test -x "/.singularity.d/runscript"; then
    exec "/.singularity.d/runscript" "$@"
fi
echo "No runscript found, executing /bin/sh"
exec /bin/sh "$@"
`

const actionShell = "#!/bin/sh\n\n" + sourceEnv + `
if test -n "$APPTAINER_SHELL" -a -x "$APPTAINER_SHELL"; then
    exec $APPTAINER_SHELL "$@"
    echo "ERROR: could not run the shell given by \$APPTAINER_SHELL" 1>&2
    exit 1
elif test -x /bin/bash; then
    SHELL=/bin/bash
    PS1="Apptainer $APPTAINER_NAME:\\w> "
    export SHELL PS1
    exec /bin/bash --norc "$@"
elif test -x /bin/sh; then
    SHELL=/bin/sh
    export SHELL
    exec /bin/sh "$@"
fi
echo "ERROR: /bin/sh does not exist in the container" 1>&2
exit 1
`

const actionStart = `#!/bin/sh

# Tell PID 1 (the instance's init) to continue. Do not remove.
kill -CONT 1

` + sourceEnv + `
if test -x "/.singularity.d/startscript"; then
    exec "/.singularity.d/startscript"
fi
`

const actionTest = "#!/bin/sh\n\n" + sourceEnv + `
if test -n "${APPTAINER_APPNAME:-}"; then
    if test -x "/scif/apps/${APPTAINER_APPNAME:-}/scif/test"; then
        exec "/scif/apps/${APPTAINER_APPNAME:-}/scif/test" "$@"
    elif test -x "/scif/apps/singularity/scif/test"; then
        exec "/scif/apps/singularity/scif/test" "$@"
    fi
    echo "No tests for app: ${APPTAINER_APPNAME:-}"
    exit 1
elif test -x "/.singularity.d/test"; then
    exec "/.singularity.d/test" "$@"
fi
echo "No test found in container, executing /bin/sh -c true"
exec /bin/sh -c true
`

// base01Sh is env/01-base.sh: a placeholder sourced first.
const base01Sh = "#!/bin/sh\n# Base environment of the container (intentionally empty).\n"

// environmentSh is env/90-environment.sh, where %environment code goes.
const environmentSh = "#!/bin/sh\n# Custom environment shell code should follow\n\n"

// appsSh is env/95-apps.sh: the environment of the SCIF app being run.
const appsSh = `#!/bin/sh
# Environment of the SCIF app selected with --app, if any.

if test -n "${APPTAINER_APPNAME:-}"; then
    export APPTAINER_APPNAME
    if test -d "/scif/apps/${APPTAINER_APPNAME:-}/"; then
        SCIF_APPS="/scif/apps"
        SCIF_APPROOT="/scif/apps/${APPTAINER_APPNAME:-}"
        export SCIF_APPROOT SCIF_APPS
        PATH="/scif/apps/${APPTAINER_APPNAME:-}:/scif/apps/singularity:$PATH"

        if test -d "/scif/apps/${APPTAINER_APPNAME:-}/bin"; then
            PATH="/scif/apps/${APPTAINER_APPNAME:-}/bin:$PATH"
        elif test -d "/scif/apps/singularity/bin"; then
            PATH="/scif/apps/singularity/bin:$PATH"
        fi

        if test -d "/scif/apps/${APPTAINER_APPNAME:-}/lib"; then
            LD_LIBRARY_PATH="/scif/apps/${APPTAINER_APPNAME:-}/lib:$LD_LIBRARY_PATH"
            export LD_LIBRARY_PATH
        elif test -d "/scif/apps/singularity/lib"; then
            LD_LIBRARY_PATH="/scif/apps/singularity/lib:$LD_LIBRARY_PATH"
            export LD_LIBRARY_PATH
        fi

        if [ -f "/scif/apps/${APPTAINER_APPNAME:-}/scif/env/01-base.sh" ]; then
            . "/scif/apps/${APPTAINER_APPNAME:-}/scif/env/01-base.sh"
        elif [ -f "/scif/apps/singularity/scif/env/01-base.sh" ]; then
            . "/scif/apps/singularity/scif/env/01-base.sh" "$@"
        fi
        if [ -f "/scif/apps/${APPTAINER_APPNAME:-}/scif/env/90-environment.sh" ]; then
            . "/scif/apps/${APPTAINER_APPNAME:-}/scif/env/90-environment.sh"
        elif [ -f "/scif/apps/singularity/scif/env/90-environment.sh" ]; then
            . "/scif/apps/singularity/scif/env/90-environment.sh" "$@"
        fi

        export PATH
    else
        echo "Could not locate the container application: ${APPTAINER_APPNAME}"
        exit 1
    fi
fi
`

// base99Sh is env/99-base.sh: the container's library directory and prompt.
const base99Sh = `#!/bin/sh
# Libraries bound into the container at run time, and the prompt.

if [ -z "$LD_LIBRARY_PATH" ]; then
    LD_LIBRARY_PATH="/.singularity.d/libs"
else
    LD_LIBRARY_PATH="$LD_LIBRARY_PATH:/.singularity.d/libs"
fi

PS1="Apptainer> "
export LD_LIBRARY_PATH PS1
`

// runtimeVarsSh is env/99-runtimevars.sh: PATH changes requested on the
// command line (--env PATH=..., APPTAINERENV_PREPEND_PATH, ...).
const runtimeVarsSh = `#!/bin/sh
# PATH changes requested when the container is started.

if [ -n "${SING_USER_DEFINED_PREPEND_PATH:-}" ]; then
	PATH="${SING_USER_DEFINED_PREPEND_PATH}:${PATH}"
fi

if [ -n "${SING_USER_DEFINED_APPEND_PATH:-}" ]; then
	PATH="${PATH}:${SING_USER_DEFINED_APPEND_PATH}"
fi

if [ -n "${SING_USER_DEFINED_PATH:-}" ]; then
	PATH="${SING_USER_DEFINED_PATH}"
fi

unset SING_USER_DEFINED_PREPEND_PATH \
	  SING_USER_DEFINED_APPEND_PATH \
	  SING_USER_DEFINED_PATH

export PATH
`

// startscript is /.singularity.d/startscript (instances run nothing by default).
const startscript = "#!/bin/sh\n"
