# OpenBao server for deploy/compose.yaml: server mode (NOT dev), integrated Raft storage, TLS.
# One node here; production runs 3 or 5 (see deploy/vault/openbao-server.hcl.example for the
# retry_join stanzas).  After the first start an operator initialises and unseals it (see
# deploy/OPERATIONS.md); nothing here does that automatically.
ui            = false
disable_mlock = true   # recommended with integrated storage (memory-mapped Raft files)
api_addr      = "https://openbao:8200"
cluster_addr  = "https://openbao:8201"

storage "raft" {
  path    = "/openbao/file"
  node_id = "openbao-0"
}

listener "tcp" {
  address         = "0.0.0.0:8200"
  cluster_address = "0.0.0.0:8201"
  tls_cert_file   = "/openbao/tls/tls.crt"
  tls_key_file    = "/openbao/tls/tls.key"
  tls_min_version = "tls13"
}

# OpenBao's own audit device, in addition to weightseal's signed audit log.
audit "file" "weightseal-file" {
  options {
    file_path = "/openbao/logs/audit.log"
    mode      = "0600"
  }
}
