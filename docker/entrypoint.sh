#!/bin/sh
# docker/entrypoint.sh — the image's entry point: makes the secrets a
# deployment asks for, then runs the command (replica, coordinator, ...).
#
# REPLICACAO_GENERATE_SECRETS=DIR makes DIR/cluster-secret (what every
# member, the coordinator and replctl prove on every connection) and
# DIR/api-token (the coordinator's Bearer token) when they are missing:
# 32 random bytes each, in hex, readable by the image's user only. Every
# container of a compose project mounts the same volume at DIR and may
# start at the same moment: each writes a file of its own and links it into
# place, which only the first one does (a link never replaces a file), so
# all of them read the same secret, whole. Where the secrets come from
# elsewhere (Docker secrets in docker-stack.yml) leave it unset.
set -eu
dir=${REPLICACAO_GENERATE_SECRETS:-}
if [ -n "$dir" ]; then
  for name in cluster-secret api-token; do
    [ -s "$dir/$name" ] && continue
    tmp=$(mktemp "$dir/.$name.XXXXXX")
    head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp"
    chmod 0400 "$tmp"
    ln "$tmp" "$dir/$name" 2>/dev/null || true
    rm -f "$tmp"
  done
fi
exec "$@"
