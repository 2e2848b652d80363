#!/usr/bin/env bash
# Enable Debian archive components beyond main (e.g. "contrib non-free", where some TTS voices
# live) for this release, in a sources file of their own that later runs find in place:
#   recipes/add_apt_components.sh "contrib non-free"     (as root; then apt-get update)
# Does nothing when the file exists; on another distribution it says what to enable and exits 0.
set -euo pipefail
components=$1
sources=/etc/apt/sources.list.d/xasr-components.sources
[ -f "${sources}" ] && exit 0
codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
if ! grep -q '^ID=debian' /etc/os-release 2>/dev/null || [ -z "${codename}" ]; then
  echo "not Debian: make sure the archive components '${components}' are enabled" >&2
  exit 0
fi
echo "enabling Debian ${codename} components ${components} in ${sources}" >&2
printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s %s-updates\nComponents: %s\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
  "${codename}" "${codename}" "${components}" > "${sources}"
