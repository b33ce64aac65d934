// Public entry point of @tuna/router-service.
export * from "./contract.js";
export { startRouter, type RouterHandle, type RouterOptions } from "./server.js";
export { startSimulator, type Fault, type FaultMode, type SimulatorHandle, type SimulatorOptions } from "./sim/simulator.js";
export { hashApiKey } from "./auth.js";
