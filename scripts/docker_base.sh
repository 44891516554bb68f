#!/usr/bin/env bash
# Local base images for a machine that reaches Debian's mirror and PyPI but no container registry.
#
#   scripts/docker_base.sh            # make posterq-base, -redis and -postgres (:bookworm) if missing
#   scripts/docker_base.sh --force    # make them again
#
# posterq-base:bookworm is Debian bookworm (minbase + python3, python3-venv, ca-certificates) made
# with debootstrap from the mirror in this machine's apt sources (POSTERQ_DEBIAN_MIRROR overrides)
# and `docker import`ed. It also carries this machine's pip settings in /etc/pip.conf: its CA
# bundle (an egress proxy's CA may be in it) and any http(s) index, so that `pip install` inside a
# build made FROM it works here. posterq-redis:bookworm is that base with Debian's redis-server,
# posterq-postgres:bookworm that base with Debian's PostgreSQL and an entry point
# (scripts/docker_postgres_entrypoint.sh) that reads the official postgres image's variables.
# None is pushed anywhere; `docker-compose.local.yml` builds and runs the stack on them.
# Quick and silent about work when all three exist (a second run takes about a second).
set -euo pipefail

BASE_IMAGE=${POSTERQ_BASE_IMAGE:-posterq-base:bookworm}
REDIS_IMAGE=${POSTERQ_REDIS_IMAGE:-posterq-redis:bookworm}
POSTGRES_IMAGE=${POSTERQ_POSTGRES_IMAGE:-posterq-postgres:bookworm}
HERE=$(cd "$(dirname "$0")" && pwd)
SUITE=bookworm
force=0
[ "${1:-}" = "--force" ] && force=1

say() { echo "docker_base: $*" >&2; }
have_image() { docker image inspect "$1" >/dev/null 2>&1; }

# The first http(s) URI of the Debian archive for $SUITE in apt's sources (one-line and deb822).
debian_mirror() {
    local file kind uri suite uris suites
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
        [ -r "$file" ] || continue
        # deb [options] URI suite components...
        while read -r kind uri suite _; do
            [ "$kind" = deb ] || continue
            [[ "$uri" == http*://* && "$suite" == "$SUITE" ]] && { echo "${uri%/}"; return; }
        done < <(sed -e 's/#.*//' -e 's/\[[^]]*\]//' "$file")
    done
    for file in /etc/apt/sources.list.d/*.sources; do
        [ -r "$file" ] || continue
        # One stanza a paragraph: print "URIs|Suites" for each.
        while IFS='|' read -r uris suites; do
            for suite in $suites; do
                [ "$suite" = "$SUITE" ] || continue
                for uri in $uris; do
                    [[ "$uri" == http*://* ]] && { echo "${uri%/}"; return; }
                done
            done
        done < <(awk 'BEGIN{RS=""; FS="\n"} {u=""; s=""; for (i=1;i<=NF;i++) {
                     if ($i ~ /^URIs:/) {u=$i; sub(/^URIs:[ \t]*/, "", u)}
                     if ($i ~ /^Suites:/) {s=$i; sub(/^Suites:[ \t]*/, "", s)} }
                     print u "|" s}' "$file")
    done
    echo "http://deb.debian.org/debian"
}

# A pip setting from PIP_<NAME> or this machine's pip configuration (empty when unset).
pip_setting() {
    local var="PIP_$(echo "$1" | tr 'a-z-' 'A-Z_')"
    if [ -n "${!var:-}" ]; then echo "${!var}"; return; fi
    python3 -m pip config list 2>/dev/null | sed -n "s/^[^.]*\.$1='\(.*\)'\$/\1/p" | tail -n 1
}

http_only() { local url; for url in $1; do [[ "$url" != http*://* ]] || printf '%s ' "$url"; done; }

make_base() {
    local mirror started cert index extra proxy
    mirror=${POSTERQ_DEBIAN_MIRROR:-$(debian_mirror)}
    command -v debootstrap >/dev/null || { say "debootstrap is not installed (apt-get install debootstrap)"; exit 1; }
    rootfs=$(mktemp -d /var/tmp/posterq-rootfs.XXXXXX)  # global: the EXIT trap removes it
    trap 'rm -rf "$rootfs" "$rootfs.log"' EXIT
    started=$SECONDS
    say "debootstrap $SUITE from $mirror into $rootfs"
    debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
        "$SUITE" "$rootfs" "$mirror" > "$rootfs.log" 2>&1 \
        || { tail -n 20 "$rootfs.log" >&2; rm -f "$rootfs.log"; exit 1; }
    rm -f "$rootfs.log"
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*

    # This machine's pip settings, for builds made FROM this base only (never the user's image).
    cert=$(pip_setting cert)
    cert=${cert:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
    {
        echo "# Written by scripts/docker_base.sh from the machine that built this image."
        echo "[global]"
        echo "timeout = 180"
        if [ -r "$cert" ]; then
            cp "$cert" "$rootfs/etc/ssl/certs/posterq-build-host.crt"
            echo "cert = /etc/ssl/certs/posterq-build-host.crt"
        fi
        index=$(http_only "$(pip_setting index-url)")
        [ -n "$index" ] && echo "index-url = ${index% }"
        extra=$(http_only "$(pip_setting extra-index-url)")
        [ -n "$extra" ] && echo "extra-index-url = ${extra% }"
        proxy=${https_proxy:-${HTTPS_PROXY:-}}
        [ -n "$proxy" ] && echo "proxy = $proxy"
    } > "$rootfs/etc/pip.conf"

    tar -C "$rootfs" -c . | docker import \
        --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["/bin/bash"]' \
        --change "LABEL org.opencontainers.image.description=\"Debian $SUITE minbase + python3 (scripts/docker_base.sh)\" posterq.base.mirror=\"$mirror\"" \
        - "$BASE_IMAGE" >/dev/null
    rm -rf "$rootfs"
    trap - EXIT
    say "$BASE_IMAGE made in $((SECONDS - started)) s"
}

make_redis() {
    local started=$SECONDS
    # The legacy builder: the client may lack buildx, and nothing here needs BuildKit.
    # Its log is shown only when the build fails (a current client warns that it is deprecated).
    DOCKER_BUILDKIT=0 docker build -q --network host -t "$REDIS_IMAGE" - > /var/tmp/posterq-redis-build.log 2>&1 <<EOF \
        || { tail -n 20 /var/tmp/posterq-redis-build.log >&2; exit 1; }
FROM $BASE_IMAGE
RUN apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends redis-server \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \\
 && install -d -o redis -g redis /data
USER redis
WORKDIR /data
EXPOSE 6379
CMD ["redis-server", "--dir", "/data", "--appendonly", "yes", "--maxmemory-policy", "noeviction"]
EOF
    rm -f /var/tmp/posterq-redis-build.log
    say "$REDIS_IMAGE made in $((SECONDS - started)) s"
}

make_postgres() {
    local started=$SECONDS context
    # The build's context: the entry point alone.
    context=$(mktemp -d /var/tmp/posterq-postgres.XXXXXX)
    cp "$HERE/docker_postgres_entrypoint.sh" "$context/entrypoint.sh"
    # No cluster at install (postgresql-common would make 15/main in the image): the entry point
    # makes one in the volume on the first start. SIGINT is PostgreSQL's fast shutdown; SIGTERM,
    # Docker's default, waits for every client to leave (the API's and the workers' pools).
    DOCKER_BUILDKIT=0 docker build -q --network host -t "$POSTGRES_IMAGE" -f - "$context" \
        > /var/tmp/posterq-postgres-build.log 2>&1 <<EOF \
        || { tail -n 20 /var/tmp/posterq-postgres-build.log >&2; rm -rf "$context"; exit 1; }
FROM $BASE_IMAGE
RUN install -d /etc/postgresql-common/createcluster.d \\
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/posterq.conf \\
 && apt-get update \\
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends postgresql \\
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* \\
 && install -d -o postgres -g postgres -m 700 /var/lib/postgresql/data \\
 && install -d -o postgres -g postgres -m 2775 /run/postgresql
COPY entrypoint.sh /usr/local/bin/posterq-postgres-entrypoint
ENV PGDATA=/var/lib/postgresql/data
USER postgres
WORKDIR /var/lib/postgresql
STOPSIGNAL SIGINT
EXPOSE 5432
ENTRYPOINT ["posterq-postgres-entrypoint"]
CMD ["postgres"]
EOF
    rm -rf "$context" /var/tmp/posterq-postgres-build.log
    say "$POSTGRES_IMAGE made in $((SECONDS - started)) s"
}

docker info >/dev/null 2>&1 || { say "no Docker daemon answers (docker info failed)"; exit 1; }
if [ "$force" = 1 ] || ! have_image "$BASE_IMAGE"; then
    make_base
    force=1  # a new base means new Redis and PostgreSQL images on it
fi
if [ "$force" = 1 ] || ! have_image "$REDIS_IMAGE"; then
    make_redis
fi
if [ "$force" = 1 ] || ! have_image "$POSTGRES_IMAGE"; then
    make_postgres
fi
say "$BASE_IMAGE, $REDIS_IMAGE and $POSTGRES_IMAGE are there"
