#!/bin/sh
# The entry point of posterq-postgres:bookworm (scripts/docker_base.sh builds it): Debian's
# PostgreSQL, set up on its first start from the variables the official postgres image reads, so
# that docker-compose.yml's postgres service runs on either image unchanged.
#
#   POSTGRES_USER (postgres)  POSTGRES_DB (the user's name)  POSTGRES_PASSWORD
#   POSTGRES_HOST_AUTH_METHOD (scram-sha-256; trust needs no password)  PGDATA (/var/lib/postgresql/data)
#
# `postgres [options]` (the default command) runs the server in the foreground as PID 1; any other
# command runs as given. The cluster is made only where $PGDATA holds none: a volume that has one
# keeps its users, databases and rows, whatever the variables say now.
set -eu

bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
: "${PGDATA:=/var/lib/postgresql/data}"
export PGDATA
say() { echo "postgres-entrypoint: $*" >&2; }

init_cluster() {
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    password=${POSTGRES_PASSWORD:-}
    if [ -z "$password" ] && [ "$auth" != trust ]; then
        say "POSTGRES_PASSWORD is empty: set it, or POSTGRES_HOST_AUTH_METHOD=trust"
        exit 1
    fi
    pwfile=""
    if [ -n "$password" ]; then
        pwfile=$(mktemp)
        printf '%s\n' "$password" > "$pwfile"
    fi
    # Sockets in the container trust its own users (as the official image does); TCP asks for
    # $auth from anywhere, since the other containers connect from addresses of their network.
    "$bin/initdb" -D "$PGDATA" -U "$user" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" ${pwfile:+--pwfile="$pwfile"} >/dev/null
    [ -z "$pwfile" ] || rm -f "$pwfile"
    echo "host all all all $auth" >> "$PGDATA/pg_hba.conf"
    if [ "$db" != postgres ]; then
        # On a socket only, so that nothing (a healthcheck over TCP) sees the server before the
        # database exists.
        "$bin/pg_ctl" -D "$PGDATA" -w -l "$PGDATA/init.log" -o "-c listen_addresses='' -k /tmp" start >/dev/null
        "$bin/createdb" -h /tmp -U "$user" "$db"
        "$bin/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
        rm -f "$PGDATA/init.log"
    fi
    say "made a cluster in $PGDATA: user $user, database $db, $auth over TCP"
}

if [ "${1:-}" = postgres ]; then
    shift
    [ -s "$PGDATA/PG_VERSION" ] || init_cluster
    exec "$bin/postgres" -D "$PGDATA" "$@"
fi
exec "$@"
