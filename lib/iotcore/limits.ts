/** Size limits of the bridge (docs/protocol.md §4), in bytes of the decoded payload. */
export const MAX_EVENT_BYTES = 256 * 1024;
export const MAX_STATE_BYTES = 64 * 1024;
export const MAX_CONFIG_BYTES = 64 * 1024;
export const MAX_COMMAND_BYTES = 256 * 1024;
/** A subfolder, like a command subfolder, is at most 256 characters. */
export const MAX_SUBFOLDER_LENGTH = 256;
/** Devices one gateway may have attached at once. */
export const MAX_ATTACHED_PER_GATEWAY = 1000;
/** exp - iat of a device JWT, and the allowed clock skew. */
export const MAX_JWT_LIFETIME_SECONDS = 24 * 60 * 60;
export const JWT_CLOCK_SKEW_SECONDS = 10 * 60;
