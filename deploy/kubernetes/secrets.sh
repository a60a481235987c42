#!/usr/bin/env bash
# Writes the Secrets the base manifests need, for clusters without
# cert-manager (with it, `kubectl apply -k deploy/kubernetes/cert-manager`
# issues the same Secrets itself):
#
#   shoal-mesh-ca      the mesh CA's intermediate (tls.crt, tls.key) and root
#                      (ca.crt), from `shoal ca init`: --ca-dir of the control planes
#   shoal-etcd-tls     the etcd members' certificate (serving and peering) and
#                      the etcd CA, a CA of its own that signs nothing else
#   shoal-etcd-client  the control planes' client certificate for etcd
#
# and, outside the cluster, the admin certificate for `shoal login` (admin/)
# and the root key (root.key), which should then go offline.
#
#   deploy/kubernetes/secrets.sh --out DIR [--trust-domain shoal.local] [--shoal PATH]
#   kubectl apply -f DIR/secrets/
#
# Needs openssl and the shoal binary (--shoal, default: shoal on PATH).
set -euo pipefail

out="" td="shoal.local" shoal="shoal" ns="shoal-system" members=3
while [ $# -gt 0 ]; do
	case "$1" in
	--out) out="$2"; shift 2 ;;
	--trust-domain) td="$2"; shift 2 ;;
	--shoal) shoal="$2"; shift 2 ;;
	--etcd-members) members="$2"; shift 2 ;;
	-h | --help) sed -n '2,19p' "$0"; exit 0 ;;
	*) echo "secrets.sh: unknown flag $1 (see --help)" >&2; exit 2 ;;
	esac
done
[ -n "$out" ] || { echo "secrets.sh: --out DIR is required" >&2; exit 2; }
command -v openssl >/dev/null || { echo "secrets.sh: openssl not found" >&2; exit 1; }
command -v "$shoal" >/dev/null || { echo "secrets.sh: --shoal $shoal not found" >&2; exit 1; }
[ ! -e "$out/ca/ca.key" ] || { echo "secrets.sh: $out already holds a CA; refusing to overwrite it" >&2; exit 1; }

umask 077
mkdir -p "$out/etcd" "$out/secrets"

# The mesh CA (root 10 years, intermediate 1 year) and an admin certificate.
"$shoal" ca init --dir "$out/ca" --trust-domain "$td" >/dev/null
"$shoal" ca issue-admin --ca-dir "$out/ca" --trust-domain "$td" --out "$out/admin" >/dev/null
mv "$out/ca/root.key" "$out/root.key"

# The etcd CA and its two certificates (ECDSA P-256).
e="$out/etcd"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
	-subj "/O=shoal/CN=shoal etcd CA" -keyout "$e/ca.key" -out "$e/ca.crt" \
	-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
sans="DNS:localhost,DNS:shoal-etcd.$ns.svc,DNS:shoal-etcd.$ns.svc.cluster.local,IP:127.0.0.1"
for i in $(seq 0 $((members - 1))); do
	sans="$sans,DNS:shoal-etcd-$i.shoal-etcd.$ns.svc,DNS:shoal-etcd-$i.shoal-etcd.$ns.svc.cluster.local"
done
issue() { # name CN extendedKeyUsage [SANs]
	local ext="basicConstraints=critical,CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=$3"
	[ -z "${4:-}" ] || ext="$ext
subjectAltName=$4"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=shoal/CN=$2" \
		-keyout "$e/$1.key" -out "$e/$1.csr" 2>/dev/null
	openssl x509 -req -in "$e/$1.csr" -CA "$e/ca.crt" -CAkey "$e/ca.key" -CAcreateserial \
		-days 825 -out "$e/$1.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
	rm "$e/$1.csr"
}
issue member shoal-etcd serverAuth,clientAuth "$sans"
issue client shoal-controlplane clientAuth

b64() { base64 -w0 <"$1"; }
secret() { # name crt key ca
	cat >"$out/secrets/$1.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $1
  namespace: $ns
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$2")
  tls.key: $(b64 "$3")
  ca.crt: $(b64 "$4")
EOF
}
secret shoal-mesh-ca "$out/ca/ca.crt" "$out/ca/ca.key" "$out/ca/root.crt"
secret shoal-etcd-tls "$e/member.crt" "$e/member.key" "$e/ca.crt"
secret shoal-etcd-client "$e/client.crt" "$e/client.key" "$e/ca.crt"

cat <<EOF
wrote $out/secrets/{shoal-mesh-ca,shoal-etcd-tls,shoal-etcd-client}.yaml
  kubectl apply -f $out/secrets/
admin certificate for the management API: $out/admin (cert.pem, key.pem, ca.pem)
  shoal login --api 127.0.0.1:18001 --cert $out/admin/cert.pem --key $out/admin/key.pem --ca-bundle $out/admin/ca.pem
move $out/root.key and $out/etcd/ca.key offline: nothing in the cluster needs them
EOF
