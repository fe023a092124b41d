#!/bin/sh
# Entry point of the local MariaDB stand-in image (scripts/base-images), for machines that
# cannot pull mariadb:11. Honours what docker-compose.mariadb.yml and the tests use of the
# official image: MARIADB_ROOT_PASSWORD, MARIADB_DATABASE, MARIADB_USER, MARIADB_PASSWORD (the
# passwords also as MARIADB_ROOT_PASSWORD_FILE / MARIADB_PASSWORD_FILE). As there, root may log
# in from anywhere with its password, the user from anywhere with all privileges on the
# database, and nothing listens on TCP until the users exist (so a TCP health check cannot pass
# early). The server listens on 3306 on all addresses and runs as `mysql`.
set -eu

DATADIR=/var/lib/mysql

say() { echo "stand-in: $*" >&2; }

# file_env NAME: NAME, or the content of the file NAME_FILE names (setting both is an error).
file_env() {
  eval "value=\${$1:-} file=\${$1_FILE:-}"
  if [ -n "$value" ] && [ -n "$file" ]; then
    say "set $1 or $1_FILE, not both"
    exit 1
  fi
  if [ -n "$file" ]; then
    value="$(cat "$file")"
  fi
  eval "$1=\$value"
}

# sql_string VALUE / sql_name VALUE: a quoted SQL string literal / backquoted identifier.
sql_string() { printf "'%s'" "$(printf '%s' "$1" | sed -e 's/\\/\\\\/g' -e "s/'/''/g")"; }
sql_name() { printf '`%s`' "$(printf '%s' "$1" | sed 's/`/``/g')"; }
# password_hash VALUE: VALUE's mysql_native_password hash, for IDENTIFIED BY PASSWORD '...'
# (read from stdin, never a command line): the bootstrap's line reader does not take every
# password as a string literal the way the server's parser does (backslashes).
password_hash() {
  printf '%s' "$1" |
    perl -MDigest::SHA=sha1,sha1_hex -e 'local $/; print "*" . uc(sha1_hex(sha1(<STDIN>)))'
}

initialise() {
  file_env MARIADB_ROOT_PASSWORD
  file_env MARIADB_PASSWORD
  if [ -z "$MARIADB_ROOT_PASSWORD" ]; then
    say "set MARIADB_ROOT_PASSWORD or MARIADB_ROOT_PASSWORD_FILE"
    exit 1
  fi
  database="${MARIADB_DATABASE:-}"
  user="${MARIADB_USER:-}"
  if [ -n "$user" ] && [ -z "$MARIADB_PASSWORD" ]; then
    say "MARIADB_USER needs MARIADB_PASSWORD or MARIADB_PASSWORD_FILE"
    exit 1
  fi
  init="$(umask 077 && mktemp)"
  root_hash="$(password_hash "$MARIADB_ROOT_PASSWORD")"
  {
    # Bootstrap mode, one statement a line: FLUSH PRIVILEGES loads the grant tables first.
    echo "FLUSH PRIVILEGES;"
    echo "DELETE FROM mysql.global_priv WHERE user = '' OR (user = 'root' AND host <> 'localhost');"
    echo "DELETE FROM mysql.proxies_priv WHERE user = 'root' AND host <> 'localhost';"
    echo "FLUSH PRIVILEGES;"
    echo "ALTER USER root@localhost IDENTIFIED BY PASSWORD '$root_hash';"
    echo "CREATE USER root@'%' IDENTIFIED BY PASSWORD '$root_hash';"
    echo "GRANT ALL ON *.* TO root@'%' WITH GRANT OPTION;"
    if [ -n "$database" ]; then
      echo "CREATE DATABASE IF NOT EXISTS $(sql_name "$database");"
    fi
    if [ -n "$user" ]; then
      echo "CREATE USER $(sql_string "$user")@'%' IDENTIFIED BY PASSWORD '$(password_hash "$MARIADB_PASSWORD")';"
      if [ -n "$database" ]; then
        # As the official image: _ and % are wildcards in a GRANT's database name.
        pattern="$(printf '%s' "$database" | sed -e 's/_/\\_/g' -e 's/%/\\%/g')"
        echo "GRANT ALL ON $(sql_name "$pattern").* TO $(sql_string "$user")@'%';"
      fi
    fi
  } >"$init"
  if ! out="$(mariadb-install-db --user=mysql --datadir="$DATADIR" --skip-test-db \
    --auth-root-authentication-method=normal --skip-name-resolve --extra-file="$init" 2>&1)"; then
    rm -f "$init"
    echo "$out" >&2
    say "mariadb-install-db failed"
    exit 1
  fi
  rm -f "$init"
  say "initialised $DATADIR (database ${database:-none}, user ${user:-none})"
}

case "${1:-mariadbd}" in
  -*) set -- mariadbd "$@" ;;
esac
if [ "${1:-mariadbd}" != mariadbd ]; then
  exec "$@"
fi
[ "$#" -gt 0 ] && shift

[ "$(id -u)" = 0 ] || { say "run as root: the server drops to the mysql user itself"; exit 1; }
mkdir -p "$DATADIR" /run/mysqld
chown mysql:mysql "$DATADIR" /run/mysqld
if [ ! -d "$DATADIR/mysql" ]; then
  initialise
fi
# The passwords are not needed any more: keep them out of the server's environment.
unset MARIADB_ROOT_PASSWORD MARIADB_PASSWORD
exec mariadbd --user=mysql --datadir="$DATADIR" --port=3306 --bind-address=0.0.0.0 \
  --skip-name-resolve "$@"
