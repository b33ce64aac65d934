/** Public surface of the vault: encrypted provider credentials and small encrypted fields. */
export {
  createSecret,
  decryptForTeam,
  deleteSecret,
  encryptForTeam,
  getSecretMetadata,
  listSecrets,
  providerCredentials,
  relabelSecret,
  rewrapAllDataKeys,
  rotateSecret,
  secretExists,
  testSecret,
  withSecret,
  type RewrapResult,
  type SecretMetadata,
  type SecretPurpose,
  type SecretUsers,
  type SecretTestOutcome,
  type SecretTestResult,
} from "./service";
export { type EncryptedBlob, keyring } from "./crypto";
export { KIND_SPECS, PROVIDER_SECRET_KIND, SECRET_KINDS, type SecretKind } from "./kinds";
