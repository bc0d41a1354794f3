# weightseal-admin: for human operators (break-glass key management with the bao/vault CLI).
#
# Operators can inspect keys and the registry, rotate keys, raise the version floor and rewrap
# stored DEKs.  They can NOT obtain a DEK: no datakey, decrypt or export; weights stay
# decryptable only through the attested release path of the key service.

path "weightseal-transit/keys/*" {
  capabilities = ["read", "list"]
}
path "weightseal-transit/keys/+/rotate" {
  capabilities = ["update"]
}
path "weightseal-transit/keys/+/config" {
  capabilities = ["update"]
  allowed_parameters = {
    "min_decryption_version" = []
    "min_encryption_version" = []
  }
}
path "weightseal-transit/rewrap/+" {
  capabilities = ["update"]
}
path "weightseal-transit/datakey/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/decrypt/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/export/*" {
  capabilities = ["deny"]
}
path "weightseal-transit/backup/*" {
  capabilities = ["deny"]
}

path "weightseal-kv/data/models/*" {
  capabilities = ["read"]
}
path "weightseal-kv/metadata/models/*" {
  capabilities = ["read", "list"]
}
