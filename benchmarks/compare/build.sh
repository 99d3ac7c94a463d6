# shellcheck shell=bash disable=SC2154,SC2034 # variables shared with the driver: check with shellcheck -x benchmarks/compare.sh
# Sourced by benchmarks/compare.sh: the binaries under test.

# Builds (or publishes with Native AOT) the server unless SERVER_DIR names one, builds TinyServer.LoadGen (when the
# plaintext matrix uses it), copies both to $tmp, and builds the C reference into $tmp/loadgen when it is here (CLG;
# else a note, and LOADGENS loses c) and, for TLS=1, into $tmp/loadgen-tls with TLS (CLG_TLS; else a note, and TLS=0).
build_binaries() {
    if [[ -z $SERVER_DIR && $BUILD == aot ]]; then
        say "publishing the server with Native AOT (src/TinyServer.Server; about 2 minutes)"
        dotnet publish -c Release -r "linux-$(dotnet --info | awk '/RID:/ { split($2, r, "-"); print r[2]; exit }')" -p:PublishAot=true \
            --nologo -v quiet -o "$tmp/published" src/TinyServer.Server/TinyServer.Server.csproj >"$tmp/build.log" 2>&1 \
            || { tail -30 "$tmp/build.log" >&2; die "publish failed"; }
        SERVER_DIR=$tmp/published
    elif [[ -z $SERVER_DIR ]]; then
        say "building Release (src/TinyServer.Server)"
        dotnet build -c Release --nologo -v quiet src/TinyServer.Server/TinyServer.Server.csproj >"$tmp/build.log" 2>&1 \
            || { tail -30 "$tmp/build.log" >&2; die "build failed"; }
        SERVER_DIR=src/TinyServer.Server/bin/Release/net10.0
    else
        [[ -x $SERVER_DIR/TinyServer.Server ]] || die "SERVER_DIR: no TinyServer.Server in $SERVER_DIR"
        say "the server is $SERVER_DIR"
    fi
    if [[ ($PLAIN == 1 && " $LOADGENS " == *" dotnet "*) || ($TLS == 1 && $TLS_LOADGEN == 1) ]]; then
        say "building Release (src/TinyServer.LoadGen)"
        dotnet build -c Release --nologo -v quiet src/TinyServer.LoadGen/TinyServer.LoadGen.csproj >>"$tmp/build.log" 2>&1 \
            || { tail -30 "$tmp/build.log" >&2; die "build failed"; }
        cp -r src/TinyServer.LoadGen/bin/Release/net10.0 "$tmp/lg"
    fi
    # Private copies: a rebuild during the run cannot change the binaries under test.
    cp -r "$SERVER_DIR" "$tmp/server"

    CLG=""
    NOTES=()
    TLS_NOTES=()
    if [[ " $LOADGENS " == *" c "* ]]; then
        if [[ -f ../shared/tools/loadgen/loadgen.c ]] && command -v gcc >/dev/null; then
            gcc -O2 -pthread -o "$tmp/loadgen" ../shared/tools/loadgen/loadgen.c
            CLG="$tmp/loadgen"
        else
            NOTES+=("The C reference load generator (../shared/tools/loadgen, and gcc) is not here: only TinyServer.LoadGen was used, and the idle connections were held by a small python3 script.")
            LOADGENS=$(tr ' ' '\n' <<<"$LOADGENS" | grep -vx c | tr '\n' ' ' || true)
        fi
    fi
    [[ $PLAIN == 0 || -n ${LOADGENS// /} ]] || die "no load generator left to run"

    # TLS: the C reference built with OpenSSL (-DWITH_TLS; needs libssl-dev), and openssl for the certificates and
    # s_time. Without them, a note, and no TLS rows.
    CLG_TLS=""
    if [[ $TLS == 1 ]]; then
        if ! command -v openssl >/dev/null; then
            NOTES+=("The openssl command is not here: the TLS rows were skipped.")
            TLS=0
        elif [[ -f ../shared/tools/loadgen/loadgen.c ]] && command -v gcc >/dev/null \
            && gcc -O2 -Wall -Wextra -pthread -DWITH_TLS -o "$tmp/loadgen-tls" ../shared/tools/loadgen/loadgen.c -lssl -lcrypto \
                >"$tmp/loadgen-tls.log" 2>&1; then
            CLG_TLS="$tmp/loadgen-tls"
        else
            NOTES+=("The C reference load generator could not be built with TLS (../shared/tools/loadgen, gcc and libssl-dev are needed): the TLS rows were skipped.")
            TLS=0
        fi
        [[ $TLS == 1 ]] || say "${NOTES[-1]}"
    fi
    if [[ $NCPU -lt 2 && $MODES == *pinned* ]]; then
        NOTES+=("One CPU only: the pinned runs were skipped.")
        MODES=unpinned
    fi
    if [[ $NCPU -lt 2 && $TLS_MODES == *pinned* ]]; then
        TLS_NOTES+=("One CPU only: the pinned TLS runs were skipped.")
        TLS_MODES=unpinned
    fi
}
