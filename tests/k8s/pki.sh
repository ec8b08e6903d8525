# shellcheck shell=bash
# The cluster's PKI and kubeconfigs, made with openssl into STATE/pki. Sourced by cluster.sh.
# Private keys stay in STATE/pki (mode 600) and are never printed.

# cert NAME CN ORG [SAN]: a key and a certificate signed by the cluster CA.
cert() {
  local name="$1" cn="$2" org="$3" san="${4:-}" p="$STATE/pki"
  [ -s "$p/$name.crt" ] && return 0
  openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/$name.key" 2>/dev/null
  chmod 600 "$p/$name.key"
  local subj="/CN=$cn"
  [ -n "$org" ] && subj="/O=$org/CN=$cn"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    if [ -n "$san" ]; then
      echo "extendedKeyUsage=serverAuth,clientAuth"
      echo "subjectAltName=$san"
    else
      echo "extendedKeyUsage=clientAuth"
    fi
  } >"$p/$name.ext"
  openssl req -new -key "$p/$name.key" -subj "$subj" -out "$p/$name.csr" 2>/dev/null
  openssl x509 -req -in "$p/$name.csr" -CA "$p/ca.crt" -CAkey "$p/ca.key" -CAcreateserial \
    -days 2 -extfile "$p/$name.ext" -out "$p/$name.crt" 2>/dev/null
  rm -f "$p/$name.csr" "$p/$name.ext"
}

# kubeconfig NAME CERT: a kubeconfig for the apiserver on the bridge with a client certificate.
kubeconfig() {
  local out="$STATE/$1.kubeconfig" p="$STATE/pki"
  [ -s "$out" ] && return 0
  cat >"$out" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: shr-k8s
    cluster:
      server: https://$NODE_IP:6443
      certificate-authority: $p/ca.crt
users:
  - name: $1
    user:
      client-certificate: $p/$2.crt
      client-key: $p/$2.key
contexts:
  - name: shr-k8s
    context:
      cluster: shr-k8s
      user: $1
current-context: shr-k8s
EOF
  chmod 600 "$out"
}

make_pki() {
  local p="$STATE/pki"
  mkdir -p "$p"
  chmod 700 "$p"
  if [ ! -s "$p/ca.crt" ]; then
    openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$p/ca.key" 2>/dev/null
    chmod 600 "$p/ca.key"
    openssl req -x509 -new -key "$p/ca.key" -subj "/CN=shr-k8s-ca" -days 2 \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
      -out "$p/ca.crt" 2>/dev/null
  fi
  local svc="kubernetes,kubernetes.default,kubernetes.default.svc,kubernetes.default.svc.$CLUSTER_DOMAIN"
  cert apiserver kube-apiserver "" "DNS:localhost,DNS:${svc//,/,DNS:},IP:127.0.0.1,IP:$NODE_IP,IP:$KUBERNETES_SVC_IP"
  cert kubelet-serving "system:node:$NODE_NAME" system:nodes "DNS:$NODE_NAME,IP:$NODE_IP,IP:127.0.0.1"
  cert admin admin system:masters
  cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
  cert controller-manager system:kube-controller-manager ""
  cert scheduler system:kube-scheduler ""
  cert kubelet "system:node:$NODE_NAME" system:nodes
  cert kube-proxy system:kube-proxy ""
  if [ ! -s "$p/sa.key" ]; then
    openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$p/sa.key" 2>/dev/null
    chmod 600 "$p/sa.key"
    openssl pkey -in "$p/sa.key" -pubout -out "$p/sa.pub" 2>/dev/null
  fi
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kubelet kubelet
  kubeconfig kube-proxy kube-proxy
}
