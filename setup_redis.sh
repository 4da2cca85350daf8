#!/usr/bin/env bash
# Install, start and check Redis for the signup service on Debian/Ubuntu (apt), Fedora/RHEL
# (dnf, yum), Arch (pacman) or macOS (Homebrew). Safe to run again: every step first looks at
# what is already there. Run with --help for the options; docs/operations.md for the rest.
# Written for bash 3.2 too (macOS): no associative arrays, no ${var,,}.
set -euo pipefail

case "${BASH_SOURCE[0]}" in
  */*) SCRIPT_DIR=$(cd "${BASH_SOURCE[0]%/*}" && pwd) ;;
  *) SCRIPT_DIR=$PWD ;;
esac
SETTINGS_SOURCE="$SCRIPT_DIR/deploy/redis.conf"
FRAGMENT_NAME="signup-redis.conf"
# Directives of deploy/redis.conf that belong to the host's own installation (its paths, its
# service manager, its listening address): --apply-settings leaves the distribution's values.
HOST_DIRECTIVES=" bind port daemonize supervised pidfile logfile dir unixsocket unixsocketperm "

HOST=127.0.0.1
PORT=6379
PORT_GIVEN=no
CHECK_USER=""
TLS=no
CACERT=""
MODE=install
APPLY=no
RESTART=yes
DRY_RUN=no
CONFIG=""

usage() {
  cat <<'EOF'
Usage: ./setup_redis.sh [options]

Installs Redis with the system's package manager if it is missing, starts it if it is not
running, then checks the connection. Every step is skipped when already done.

Modes:
  (no option)          install if missing, start if stopped, check
  --apply-settings     also apply the recommended production settings of deploy/redis.conf
                       (AOF with fsync every second, maxmemory-policy noeviction, no anonymous
                       user, an ACL user "signup" limited to signup:* keys and an "admin" user,
                       each with a generated password), then restart Redis and check through
                       the "signup" user. Settings already applied are kept as they are.
  --check              only check a running Redis; installs and changes nothing

Options:
  --host HOST          Redis host to check (default 127.0.0.1)
  --port PORT          Redis port to check (default 6379)
  --user USER          ACL user for the check; its password is read from REDISCLI_AUTH
  --tls                check over TLS (a Redis serving tls-port)
  --cacert FILE        with --tls: the CA certificate that signed Redis' certificate
  --config FILE        Redis configuration file to apply the settings to (default: the
                       distribution's, e.g. /etc/redis/redis.conf)
  --no-restart         with --apply-settings: write the settings but do not (re)start Redis
                       nor check it
  --dry-run            print the commands that would change the system instead of running them
  -h, --help           this help

Exit status: 0 done and the check passed; 1 a step or the check failed; 2 bad usage or an
unsupported system.

Examples:
  sudo ./setup_redis.sh                                 # install/start/check on this machine
  sudo ./setup_redis.sh --apply-settings                # production settings + ACL users
  REDISCLI_AUTH=... ./setup_redis.sh --check --user signup --port 6379
EOF
}

say() { printf '%s\n' "$*"; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }
die() { printf 'ERROR: %s\n' "$1" >&2; exit "${2:-1}"; }

# Run a command that changes the system (printed instead with --dry-run).
run() {
  if [ "$DRY_RUN" = yes ]; then
    say "would run: $*"
    return 0
  fi
  say "+ $*"
  "$@"
}

# The same as root: through sudo when we are not root (need_root decides).
run_root() {
  if [ -n "$SUDO" ]; then
    run sudo "$@"
  else
    run "$@"
  fi
}

parse_args() {
  while [ "$#" -gt 0 ]; do
    case "$1" in
      -h|--help) usage; exit 0 ;;
      --check) MODE=check ;;
      --apply-settings) APPLY=yes ;;
      --no-restart) RESTART=no ;;
      --dry-run) DRY_RUN=yes ;;
      --host) [ "$#" -ge 2 ] || die "--host needs a value" 2; HOST=$2; shift ;;
      --port) [ "$#" -ge 2 ] || die "--port needs a value" 2; PORT=$2; PORT_GIVEN=yes; shift ;;
      --user) [ "$#" -ge 2 ] || die "--user needs a value" 2; CHECK_USER=$2; shift ;;
      --tls) TLS=yes ;;
      --cacert) [ "$#" -ge 2 ] || die "--cacert needs a value" 2; CACERT=$2; shift ;;
      --config) [ "$#" -ge 2 ] || die "--config needs a value" 2; CONFIG=$2; shift ;;
      *) usage >&2; die "unknown option: $1" 2 ;;
    esac
    shift
  done
  case "$PORT" in
    ''|*[!0-9]*) die "--port must be a number, got '$PORT'" 2 ;;
  esac
  if [ "$MODE" = check ] && [ "$APPLY" = yes ]; then
    die "--check changes nothing; it cannot be combined with --apply-settings" 2
  fi
}

# --- Detecting the system -----------------------------------------------------------------

OS_NAME=""
PM=""
detect_system() {
  local kernel
  kernel=$(uname -s 2>/dev/null || echo unknown)
  case "$kernel" in
    Darwin)
      OS_NAME="macOS"
      command -v brew >/dev/null 2>&1 && PM=brew
      ;;
    Linux)
      OS_NAME="Linux"
      if [ -r /etc/os-release ]; then
        # shellcheck disable=SC1091 # the system's own file, read for PRETTY_NAME
        OS_NAME=$(. /etc/os-release && printf '%s' "${PRETTY_NAME:-${NAME:-Linux}}")
      fi
      if command -v apt-get >/dev/null 2>&1; then PM=apt
      elif command -v dnf >/dev/null 2>&1; then PM=dnf
      elif command -v yum >/dev/null 2>&1; then PM=yum
      elif command -v pacman >/dev/null 2>&1; then PM=pacman
      fi
      ;;
    *) OS_NAME=$kernel ;;
  esac
  if [ -z "$PM" ]; then
    die "unsupported system: $OS_NAME with none of apt-get, dnf, yum, pacman or brew.
Install Redis 7 yourself, apply deploy/redis.conf, then run: ./setup_redis.sh --check" 2
  fi
  say "system: $OS_NAME, package manager: $PM"
}

# Per package manager: the packages, the service name, where the configuration lives.
PACKAGES=""
SERVICE=""
CONFIG_CANDIDATES=""
plan_for_system() {
  case "$PM" in
    apt) PACKAGES="redis-server redis-tools"; SERVICE=redis-server
         CONFIG_CANDIDATES="/etc/redis/redis.conf" ;;
    dnf|yum) PACKAGES="redis"; SERVICE=redis
         CONFIG_CANDIDATES="/etc/redis/redis.conf /etc/redis.conf /etc/valkey/valkey.conf" ;;
    pacman) PACKAGES="redis"; SERVICE=redis
         CONFIG_CANDIDATES="/etc/redis/redis.conf /etc/valkey/valkey.conf" ;;
    brew) PACKAGES="redis"; SERVICE=redis
         CONFIG_CANDIDATES="$(brew --prefix)/etc/redis.conf" ;;
  esac
}

SUDO=""
need_root() {
  # Installing and changing system files needs root on Linux; Homebrew refuses root.
  if [ "$PM" = brew ]; then
    [ "$(id -u)" -ne 0 ] || die "run this as your own user on macOS: Homebrew refuses root"
    return
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
      SUDO=sudo
    elif [ "$DRY_RUN" = no ]; then
      die "installing Redis needs root: run this script as root or install sudo"
    fi
  fi
}

# --- Installing and starting --------------------------------------------------------------

install_redis() {
  if command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1; then
    say "installed: $(redis-server --version | cut -d' ' -f1-3)"
    return
  fi
  need_root
  say "installing Redis ($PACKAGES) with $PM"
  # Word splitting of $PACKAGES is wanted: one argument per package.
  # shellcheck disable=SC2086
  case "$PM" in
    apt) run_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
         run_root env DEBIAN_FRONTEND=noninteractive apt-get install -y $PACKAGES ;;
    dnf) run_root dnf install -y $PACKAGES ;;
    yum) run_root yum install -y epel-release || true
         run_root yum install -y $PACKAGES ;;
    pacman) run_root pacman -S --needed --noconfirm $PACKAGES ;;
    brew) run brew install $PACKAGES ;;
  esac
}

# PONG, or an authentication error (it answers, but wants a password): Redis is up.
redis_answers() {
  local reply
  reply=$(redis_cli ping 2>&1 || true)
  case "$reply" in
    *PONG*|*NOAUTH*|*WRONGPASS*|*NOPERM*|*"Authentication required"*) return 0 ;;
    *) return 1 ;;
  esac
}

has_systemd() { [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; }

# start | restart the system's Redis through whatever manages services here.
service_action() {
  local action=$1
  need_root
  if [ "$PM" = brew ]; then
    run brew services "$action" "$SERVICE"
  elif has_systemd; then
    if [ "$action" = start ]; then
      run_root systemctl enable --now "$SERVICE"
    else
      run_root systemctl restart "$SERVICE"
    fi
  elif command -v service >/dev/null 2>&1 && [ -e "/etc/init.d/$SERVICE" ]; then
    run_root service "$SERVICE" "$action"
  else
    die "no service manager found to $action Redis: start it yourself with
  redis-server $(find_config) --daemonize yes"
  fi
}

wait_for_redis() {
  local tries=0
  [ "$DRY_RUN" = yes ] && return 0
  until redis_answers; do
    tries=$((tries + 1))
    [ "$tries" -lt 50 ] || die "Redis does not answer on $HOST:$PORT after starting it"
    sleep 0.2
  done
}

start_redis() {
  if redis_answers; then
    say "running: Redis answers on $HOST:$PORT"
    return
  fi
  say "starting Redis"
  service_action start
  wait_for_redis
}

# --- Applying the recommended settings ----------------------------------------------------

find_config() {
  local candidate
  if [ -n "$CONFIG" ]; then
    printf '%s\n' "$CONFIG"
    return
  fi
  for candidate in $CONFIG_CANDIDATES; do
    if [ -f "$candidate" ]; then
      printf '%s\n' "$candidate"
      return
    fi
  done
  printf '%s\n' "${CONFIG_CANDIDATES%% *}"
}

random_password() {
  od -An -N32 -tx1 /dev/urandom | tr -d ' \n'
}

# deploy/redis.conf without comments and without the host's own directives, the two
# CHANGE-ME passwords replaced by the given ones.
settings_fragment() {
  local app_password=$1 admin_password=$2 line word
  printf '# Written by setup_redis.sh from deploy/redis.conf (host-specific lines left out).\n'
  printf '# Included at the end of the main configuration, so these values win.\n'
  while IFS= read -r line || [ -n "$line" ]; do
    case "$line" in ''|'#'*) continue ;; esac
    word=${line%% *}
    case "$HOST_DIRECTIVES" in *" $word "*) continue ;; esac
    line=${line//CHANGE-ME-signup-app-password/$app_password}
    line=${line//CHANGE-ME-admin-password/$admin_password}
    printf '%s\n' "$line"
  done < "$SETTINGS_SOURCE"
}

# Write stdin to a file (append with -a) as root when we cannot write it ourselves.
write_file() {
  local append=no
  if [ "$1" = -a ]; then append=yes; shift; fi
  local target=$1
  if [ -n "$SUDO" ]; then
    if [ "$append" = yes ]; then sudo tee -a "$target" >/dev/null; else sudo tee "$target" >/dev/null; fi
  elif [ "$append" = yes ]; then
    cat >> "$target"
  else
    cat > "$target"
  fi
}

# A file we may only be able to read as root.
read_as_root() {
  if [ -n "$SUDO" ]; then sudo cat "$1"; else cat "$1"; fi
}

APP_PASSWORD=""
apply_settings() {
  local config fragment admin_password
  [ -r "$SETTINGS_SOURCE" ] || die "cannot read $SETTINGS_SOURCE (run the script from the project)"
  config=$(find_config)
  [ -f "$config" ] || die "no Redis configuration at $config: use --config FILE"
  fragment="$(dirname "$config")/$FRAGMENT_NAME"
  if [ "$PORT_GIVEN" = no ]; then
    # The port that configuration listens on, for the URL printed and the check after restart.
    PORT=$(sed -n 's/^[[:space:]]*port[[:space:]]\{1,\}\([0-9]\{1,\}\).*/\1/p' "$config" | tail -n 1)
    PORT=${PORT:-6379}
  fi
  if grep -Eq '^[[:space:]]*aclfile[[:space:]]' "$config"; then
    die "$config uses an aclfile: add the users of deploy/redis.conf to that file instead"
  fi
  if [ ! -w "$config" ] || [ ! -w "$(dirname "$config")" ]; then
    need_root
  fi

  if [ -f "$fragment" ]; then
    say "settings already applied: $fragment (kept as it is, passwords unchanged)"
  else
    say "writing the recommended settings to $fragment"
    APP_PASSWORD=$(random_password)
    admin_password=$(random_password)
    if [ "$DRY_RUN" = yes ]; then
      say "would write $fragment (from $SETTINGS_SOURCE, with generated passwords)"
    else
      (umask 077 && settings_fragment "$APP_PASSWORD" "$admin_password" | write_file "$fragment")
      # Readable by the redis user (it runs the server), not by everyone.
      if id redis >/dev/null 2>&1 && { [ "$(id -u)" -eq 0 ] || [ -n "$SUDO" ]; }; then
        run_root chown "root:$(id -gn redis)" "$fragment"
      fi
      run_root chmod 640 "$fragment"
    fi
  fi

  if grep -qxF "include $fragment" "$config"; then
    say "already included from $config"
  else
    say "including it at the end of $config"
    if [ "$DRY_RUN" = yes ]; then
      say "would append: include $fragment"
    else
      printf '\n# The signup service settings (setup_redis.sh --apply-settings)\ninclude %s\n' \
        "$fragment" | write_file -a "$config"
    fi
  fi

  if [ -n "$APP_PASSWORD" ]; then
    say ""
    say "Put this in the app's .env (the admin password is in $fragment):"
    say "  REDIS_URL=redis://signup:$APP_PASSWORD@$HOST:$PORT/0"
    say ""
  fi
  if [ "$RESTART" = no ]; then
    say "not restarting (--no-restart): restart Redis to use the new settings"
    return
  fi
  if redis_answers; then
    say "restarting Redis to use the new settings"
    service_action restart
  else
    service_action start
  fi
  wait_for_redis
  # From now on the default user is off: check through the application's user.
  if [ -z "$CHECK_USER" ]; then
    CHECK_USER=signup
    if [ -z "$APP_PASSWORD" ]; then
      APP_PASSWORD=$(read_as_root "$fragment" | sed -n 's/^user signup on >\([^ ]*\) .*/\1/p')
    fi
    export REDISCLI_AUTH="$APP_PASSWORD"
  fi
}

# --- Checking -----------------------------------------------------------------------------

redis_cli() {
  set -- -h "$HOST" -p "$PORT" "$@"
  if [ -n "$CHECK_USER" ]; then
    set -- --user "$CHECK_USER" "$@"
  fi
  if [ "$TLS" = yes ]; then
    if [ -n "$CACERT" ]; then
      set -- --cacert "$CACERT" "$@"
    fi
    set -- --tls "$@"
  fi
  redis-cli --no-auth-warning "$@"
}

# One field of an INFO section, e.g. info_value persistence aof_enabled.
info_value() {
  redis_cli --raw info "$1" 2>/dev/null | tr -d '\r' | sed -n "s/^$2:\(.*\)/\1/p"
}

config_value() {
  redis_cli --raw config get "$1" 2>/dev/null | sed -n 2p
}

check_redis() {
  local reply version major key problems=0 policy aof fsync
  command -v redis-cli >/dev/null 2>&1 || die "redis-cli is not installed (it comes with Redis)"
  local over=""
  if [ "$TLS" = yes ]; then over=" over TLS"; fi
  say "checking Redis on $HOST:$PORT${CHECK_USER:+ as user $CHECK_USER}$over"
  reply=$(redis_cli ping 2>&1 || true)
  if [ "$reply" != PONG ]; then
    case "$reply" in
      *NOAUTH*|*WRONGPASS*|*"Authentication required"*)
        die "Redis answers but refuses us: give --user and the password in REDISCLI_AUTH" ;;
      *) die "no answer from Redis on $HOST:$PORT: ${reply:-nothing}" ;;
    esac
  fi
  say "ping: PONG"

  version=$(redis_cli --raw info server 2>/dev/null | sed -n 's/^redis_version:\([0-9.]*\).*/\1/p')
  if [ -n "$version" ]; then
    say "version: $version"
    major=${version%%.*}
    [ "$major" -ge 7 ] || warn "Redis $version: the project is built and tested for Redis 7"
  else
    say "version: not visible to this user (INFO is refused)"
  fi

  # A write, read and delete under the app's prefix, with a TTL in case we are interrupted.
  key="signup:selftest:setup-$$-$RANDOM"
  if [ "$(redis_cli set "$key" ok EX 30 2>&1)" = OK ] \
      && [ "$(redis_cli --raw get "$key" 2>&1)" = ok ] \
      && [ "$(redis_cli del "$key" 2>&1)" = 1 ]; then
    say "write/read/delete under signup:: ok"
  else
    redis_cli del "$key" >/dev/null 2>&1 || true
    die "could not write, read and delete a key under signup: (full? read-only? no permission?)"
  fi

  # AOF and the eviction policy from INFO, which the app's user may run too; appendfsync only
  # through CONFIG, which is the admin's: asking as the app's user would only add a refusal to
  # ACL LOG, where an operator looks for real ones.
  aof=$(info_value persistence aof_enabled)
  policy=$(info_value memory maxmemory_policy)
  if [ -z "$aof" ] || [ -z "$policy" ]; then
    say "settings: not visible to this user (INFO is refused)"
  else
    case "$aof" in 1) aof=yes ;; 0) aof=no ;; esac
    fsync="not checked as the app's user"
    if [ "$CHECK_USER" != signup ]; then
      fsync=$(config_value appendfsync)
      fsync=${fsync:-"not visible to this user"}
    fi
    say "settings: appendonly $aof, appendfsync $fsync, maxmemory-policy $policy"
    if [ "$aof" != yes ]; then
      warn "AOF is off: a Redis crash loses pending registrations (--apply-settings turns it on)"
      problems=$((problems + 1))
    fi
    case "$fsync" in
      everysec|always|not*) ;;
      *) warn "appendfsync $fsync: use everysec"; problems=$((problems + 1)) ;;
    esac
    if [ "$policy" != noeviction ]; then
      warn "maxmemory-policy $policy evicts pending registrations when memory is full: use noeviction"
      problems=$((problems + 1))
    fi
  fi
  if [ "$problems" -gt 0 ]; then
    say "check: connection OK, $problems setting(s) differ from the recommended ones"
  else
    say "check: OK"
  fi
}

main() {
  parse_args "$@"
  if [ "$MODE" = check ]; then
    check_redis
    return
  fi
  detect_system
  plan_for_system
  install_redis
  if [ "$APPLY" = yes ]; then
    apply_settings
    [ "$RESTART" = yes ] || return 0
  else
    start_redis
  fi
  if [ "$DRY_RUN" = yes ]; then
    say "dry run: not checking"
    return
  fi
  check_redis
}

main "$@"
