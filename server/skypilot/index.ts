/** Public surface of the skypilot domain: the SkyPilot API server client and the live spot price source. */
export {
  type InstanceTypeInfo,
  type ListAcceleratorsFilter,
  normaliseEndpoint,
  parseInstanceTypeInfo,
  type RequestPayload,
  type RequestStatus,
  type ServiceRecord,
  type ServiceReplica,
  SKYPILOT_CLIENT_API_VERSION,
  SKYPILOT_CLIENT_VERSION,
  SKYPILOT_DEFAULT_URL,
  SkyPilotClient,
  type SkyPilotClientOptions,
  type SkyPilotHealth,
  type StorageRecord,
  type WaitOptions,
} from "./client";
export { skypilotPriceSource } from "./prices";
