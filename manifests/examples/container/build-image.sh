#!/bin/sh
# build-image.sh [NAME] — builds NAME:1 and NAME:2 (default localhost/runner-examples/wordfreq),
# two revisions of a tiny image holding `wordfreq`, a tool this machine does not have. No
# registry is needed: a root filesystem with Debian's busybox-static and the tool is tarred
# and loaded with `podman import` (about 2 MB; same content, same image ID).
set -eu
name=${1:-localhost/runner-examples/wordfreq}
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list >/dev/null 2>&1 || {
  echo "build-image.sh: needs a static busybox at $busybox (Debian: apt-get install busybox-static)" >&2
  exit 1
}
for version in 1 2; do
  d=$(mktemp -d)
  mkdir -p "$d/root/bin" "$d/root/etc" "$d/root/tmp" "$d/root/usr/local/bin"
  cp "$busybox" "$d/root/bin/busybox"
  for applet in $("$busybox" --list); do
    [ "$applet" = busybox ] || ln -s busybox "$d/root/bin/$applet"
  done
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n' >"$d/root/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' >"$d/root/etc/group"
  chmod 1777 "$d/root/tmp"
  # the tool: the N most frequent words of its input; revision 2 also gives each one's share
  cat >"$d/root/usr/local/bin/wordfreq" <<TOOL
#!/bin/sh
# wordfreq $version: wordfreq N FILE... -> the N most frequent words, most frequent first
n=\$1; shift
cat "\$@" | tr -cs 'A-Za-z' '\n' | tr 'A-Z' 'a-z' | grep -v '^\$' | sort | uniq -c |
  sort -k1,1nr -k2 | head -n "\$n" |
  awk -v v=$version '{ total += \$1; line[NR] = \$0 }
    END { for (i = 1; i <= NR; i++) { split(line[i], f, " ")
      if (v == 1) print f[2], f[1]; else printf "%s %d %.1f%%\n", f[2], f[1], 100 * f[1] / total } }'
TOOL
  chmod 755 "$d/root/usr/local/bin/wordfreq"
  tar -C "$d/root" --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$d/rootfs.tar" .
  touch -d @0 "$d/rootfs.tar"
  podman import -q --change 'CMD ["/bin/sh"]' "$d/rootfs.tar" "$name:$version" >/dev/null
  rm -rf "$d"
  echo "$name:$version $(podman image inspect --format '{{.Id}}' "$name:$version" | cut -c1-12)"
done
