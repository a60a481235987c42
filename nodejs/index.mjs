// ESM entry: a thin wrapper over the CommonJS implementation.
import shoal from './index.js';

export const { register, reportLoad, defaultID, KEY_PREFIX, Handle, EtcdError, EtcdUnavailableError, ControlPlaneError } = shoal;
export default shoal;
