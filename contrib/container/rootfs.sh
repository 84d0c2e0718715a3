#!/usr/bin/env bash
# Makes what the Containerfile copies into the image, in the build context CONTEXT: rootfs/
# (BINARY at /usr/local/bin/authd, the shared libraries it links as ldd lists them, an authd
# user with uid 10001) and state/authd (the empty /var/lib/authd, 0700, given to that user by
# COPY).
# Usage: contrib/container/rootfs.sh BINARY CONTEXT
set -euo pipefail
bin=$1
root=$2/rootfs
rm -rf "$root" "$2/state"
install -d -m 0755 "$2/state"
install -d -m 0700 "$2/state/authd"
install -d "$root/usr/local/bin" "$root/etc" "$root/tmp"
chmod 1777 "$root/tmp"
install -m 0755 "$bin" "$root/usr/local/bin/authd"
# No debugging symbols in an image (a debug build shrinks tenfold).
if command -v strip >/dev/null; then strip --strip-debug "$root/usr/local/bin/authd"; fi
# The dynamic loader and every library, at the paths the binary asks for (the loader must be
# executable).
for lib in $(ldd "$bin" | grep -o '/[^ ]*'); do
  install -D -m 0755 "$(readlink -f "$lib")" "$root$lib"
done
# The CA certificates outbound TLS checks against (OIDC providers, webhooks, SMTP, PostgreSQL).
install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
printf 'root:x:0:0::/:/nonexistent\nauthd:x:10001:10001::/var/lib/authd:/nonexistent\n' >"$root/etc/passwd"
printf 'root:x:0:\nauthd:x:10001:\n' >"$root/etc/group"
echo "root filesystem in $root: $(du -sh "$root" | cut -f1)"
