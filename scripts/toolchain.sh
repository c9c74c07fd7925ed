#!/usr/bin/env bash
# Installs the tools offboard needs to run (`npm start`) or be tested (`npm test`), pinned and
# idempotent. Built tools live in a per-user cache keyed by version, so a fresh clone (CI) reuses
# them; the paths are written to .tools/toolchain.json for the Node code to read.
#
#   scripts/toolchain.sh start   Temporal CLI, slapd, PostgreSQL (the sample warehouse)
#   scripts/toolchain.sh test    the above, plus the time-skipping test server, docker-compose, Samba AD, chromium,
#                                and scim2-server (an independent SCIM 2.0 server, from PyPI into a venv)
#                                Keycloak (and `start` too when OFFBOARD_WITH_KEYCLOAK=1, see scripts/keycloak.ts)
set -euo pipefail

purpose=${1:-test}
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${OFFBOARD_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/offboard}
mkdir -p "$cache" "$root/.tools"

TEMPORAL_CLI_VERSION=v1.5.1
KEYCLOAK_VERSION=26.5.6
# Keycloak 26 needs Java 21 or later; the Debian JDK is 17, so a second JDK is named here.
KEYCLOAK_JAVA_HOME=${KEYCLOAK_JAVA_HOME:-/usr/lib/jvm/temurin-25-jdk-amd64}
TEST_SERVER_VERSION=$(sed -n 's:.*<temporal.test.server.version>\(.*\)</temporal.test.server.version>.*:\1:p' "$root/scripts/test-server/pom.xml")

# The version in the cache key is the one pinned in scripts/scim2-server/requirements.txt.
SCIM2_SERVER_VERSION=$(sed -n 's/^scim2-server==//p' "$root/scripts/scim2-server/requirements.txt")

log() { printf '[toolchain] %s\n' "$*" >&2; }

apt_updated=no
apt_install() {
  # Debian packages by name; `apt-get update` once per run, only when something is missing.
  local missing=()
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg"); done
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  if [ $apt_updated = no ]; then $sudo apt-get update -qq; apt_updated=yes; fi
  log "installing Debian packages: ${missing[*]}"
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

temporal_cli() {
  if [ -n "${TEMPORAL_CLI_PATH:-}" ]; then echo "$TEMPORAL_CLI_PATH"; return; fi
  if command -v temporal >/dev/null 2>&1; then command -v temporal; return; fi
  local dir="$cache/temporal-cli-$TEMPORAL_CLI_VERSION"
  if [ ! -x "$dir/temporal" ]; then
    if ! command -v go >/dev/null 2>&1; then
      # Without Go, the SDK's own download is the fallback (an empty path tells the Node code so).
      log "Go not found: the Temporal SDK will download its CLI itself"
      echo ""; return
    fi
    log "building the Temporal CLI $TEMPORAL_CLI_VERSION with go install (first time only, a few minutes)"
    mkdir -p "$dir"
    (cd "$dir" && GOBIN="$dir" GOFLAGS=-trimpath go install "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION")
  fi
  echo "$dir/temporal"
}

test_server() {
  # The time-skipping test server is a Java program; the SDK starts `<wrapper> <port>` and waits
  # about 5 s for it. A class-data-sharing archive made on first install cuts the JVM's start
  # from about 1.7 s to 0.3 s on this machine.
  local dir="$cache/temporal-test-server-$TEST_SERVER_VERSION"
  local jvm_opts="-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xshare:auto"
  if [ ! -f "$dir/classes.jsa" ]; then
    log "fetching io.temporal:temporal-test-server:$TEST_SERVER_VERSION from Maven Central"
    rm -rf "$dir.partial" && mkdir -p "$dir.partial/lib"
    mvn -q -B -f "$root/scripts/test-server/pom.xml" dependency:copy-dependencies \
      -DoutputDirectory="$dir.partial/lib" >&2
    rm -rf "$dir" && mv "$dir.partial" "$dir"
    # Training run: start, let it serve, stop; the JVM writes the class archive at exit.
    local port
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    java $jvm_opts -XX:ArchiveClassesAtExit="$dir/classes.jsa.partial" -cp "$(find "$dir/lib" -name '*.jar' | sort | paste -sd: -)" \
      io.temporal.testserver.TestServer "$port" >/dev/null 2>&1 &
    local pid=$!
    sleep 6
    kill "$pid"; wait "$pid" 2>/dev/null || true
    mv "$dir/classes.jsa.partial" "$dir/classes.jsa"
  fi
  # The wrapper is rewritten on every run (cheap), so a change to it reaches existing caches.
  # The server's output goes to a log file, never to a pipe that nobody may be reading.
  local classpath
  classpath=$(find "$dir/lib" -name '*.jar' | sort | paste -sd: -)
  cat > "$dir/test-server.partial" <<WRAPPER
#!/bin/sh
# Temporal time-skipping test server $TEST_SERVER_VERSION; usage: test-server <port>
exec java $jvm_opts -XX:SharedArchiveFile=$dir/classes.jsa -cp $classpath io.temporal.testserver.TestServer "\$@" \
  >>"\${TMPDIR:-/tmp}/offboard-test-server-\$1.log" 2>&1 </dev/null
WRAPPER
  chmod +x "$dir/test-server.partial"
  mv "$dir/test-server.partial" "$dir/test-server"
  echo "$dir/test-server"
}

keycloak_home() {
  # The Quarkus distribution from Maven Central, unpacked once per version. A first `start-dev`
  # with the build options the tests and `npm start` use (scripts/keycloak.ts: an in-memory
  # database, health checks) runs at install time: it rebuilds the server image (the Quarkus
  # augmentation, several seconds) and keeps it, so later starts skip that step and never write
  # into this shared directory.
  # Called as $(keycloak_home): a command substitution does not inherit errexit, so set it again.
  set -e
  local dir="$cache/keycloak-$KEYCLOAK_VERSION"
  if [ ! -x "$KEYCLOAK_JAVA_HOME/bin/java" ]; then
    # Without it the Keycloak tests are skipped (and say why), as the AD tests are without root.
    log "Keycloak $KEYCLOAK_VERSION needs Java 21+: no JDK at $KEYCLOAK_JAVA_HOME (set KEYCLOAK_JAVA_HOME); Keycloak not installed"
    echo ""
    return 0
  fi
  if [ ! -f "$dir/.built" ]; then
    log "fetching org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip from Maven Central (164 MB, first time only)"
    rm -rf "$dir.partial" && mkdir -p "$dir.partial"
    (cd "$dir.partial" && mvn -q -B dependency:unpack -Dartifact="org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" \
      -DoutputDirectory="$dir.partial" -DmarkersDirectory="$dir.partial/markers" >&2)
    rm -rf "$dir.partial/markers" "$dir.partial/\${project.basedir}"
    mv "$dir.partial/keycloak-$KEYCLOAK_VERSION" "$dir.partial/home"
    log "building Keycloak's dev image (a first start-dev, first time only)"
    local port mgmt pid started=no
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    mgmt=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    JAVA_HOME="$KEYCLOAK_JAVA_HOME" JAVA_OPTS_APPEND="-Dquarkus.transaction-manager.object-store.directory=$dir.partial/tx" \
      "$dir.partial/home/bin/kc.sh" start-dev --db=dev-mem --health-enabled=true \
      --http-host 127.0.0.1 --http-port "$port" --http-management-port "$mgmt" >"$dir.partial/build.log" 2>&1 </dev/null &
    pid=$!
    # Five minutes: a busy machine is slow, and this runs once.
    for _ in $(seq 1 300); do
      if grep -q 'started in' "$dir.partial/build.log"; then started=yes; break; fi
      kill -0 "$pid" 2>/dev/null || break
      sleep 1
    done
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if [ $started = no ]; then
      log "Keycloak did not start; its output is in $dir.partial/build.log"
      exit 1
    fi
    rm -rf "$dir.partial/tx" "$dir.partial/home/data"
    touch "$dir.partial/.built"
    rm -rf "$dir" && mv "$dir.partial" "$dir"
  fi
  echo "$dir/home"
}

postgres_bin() {
  apt_install postgresql
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -x "$bin/postgres" ] || { log "PostgreSQL server binaries not found under /usr/lib/postgresql"; exit 1; }
  echo "$bin"
}

slapd_bin() {
  apt_install slapd ldap-utils
  echo /usr/sbin
}

scim2_server() {
  # A venv is not relocatable (its scripts name its own path), so it is built in place and
  # marked complete by a stamp file; a half-built one is removed and built again.
  local dir="$cache/scim2-server-$SCIM2_SERVER_VERSION"
  if [ ! -f "$dir/.installed" ]; then
    command -v python3 >/dev/null 2>&1 || apt_install python3
    python3 -c 'import ensurepip' 2>/dev/null || apt_install python3-venv
    log "installing scim2-server $SCIM2_SERVER_VERSION from PyPI into $dir"
    rm -rf "$dir"
    python3 -m venv "$dir" >&2
    "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input \
      -r "$root/scripts/scim2-server/requirements.txt" >&2
    "$dir/bin/scim2-server" --help >/dev/null
    touch "$dir/.installed"
  fi
  echo "$dir/bin/scim2-server"
}

temporal=$(temporal_cli)
slapd_dir=$(slapd_bin)
test_server_path=""
scim2_server_path=""
keycloak_path=""
# PostgreSQL: throwaway clusters for the tests, and the sample warehouse that `npm start` offboards from.
postgres_dir=$(postgres_bin)
if [ "$purpose" = test ]; then
  test_server_path=$(test_server)
  # samba-ad-provision holds the schema files `samba-tool domain provision` reads (only a
  # Recommends of samba-ad-dc); the AD tests run their own DC, started by scripts/services.ts.
  # chromium: the browser tests (Temporal UI, evidence report) drive Debian's build through playwright-core.
  apt_install docker-compose samba samba-ad-dc samba-ad-provision winbind chromium
  scim2_server_path=$(scim2_server)
  keycloak_path=$(keycloak_home) || exit 1
else
  # `start` installs nothing for tests, but keeps naming what an earlier `test` run installed.
  [ -x "$cache/temporal-test-server-$TEST_SERVER_VERSION/test-server" ] && test_server_path="$cache/temporal-test-server-$TEST_SERVER_VERSION/test-server"
  [ -f "$cache/scim2-server-$SCIM2_SERVER_VERSION/.installed" ] && scim2_server_path="$cache/scim2-server-$SCIM2_SERVER_VERSION/bin/scim2-server"
  # Keycloak is installed for `npm start` only when asked for (`npm start -- --with-keycloak` sets it).
  if [ "${OFFBOARD_WITH_KEYCLOAK:-}" = 1 ]; then
    keycloak_path=$(keycloak_home) || exit 1
  elif [ -f "$cache/keycloak-$KEYCLOAK_VERSION/.built" ]; then
    keycloak_path="$cache/keycloak-$KEYCLOAK_VERSION/home"
  fi
fi

cat > "$root/.tools/toolchain.json" <<JSON
{
  "temporalCli": "$temporal",
  "testServer": "$test_server_path",
  "postgresBin": "$postgres_dir",
  "slapdBin": "$slapd_dir",
  "scim2Server": "$scim2_server_path",
  "keycloakHome": "$keycloak_path",
  "keycloakJavaHome": "$KEYCLOAK_JAVA_HOME"
}
JSON
