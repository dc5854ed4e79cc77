import { MemoryStorage } from '../../lib/storage/memory-storage.js';
import { describeStorageContract } from './contract.js';

describeStorageContract('MemoryStorage', () => {
  const storages = new Map<string, MemoryStorage>();
  return {
    open(nodeId, clusterId) {
      const key = `${clusterId}/${nodeId}`;
      let storage = storages.get(key);
      if (!storage) storages.set(key, (storage = new MemoryStorage()));
      return storage;
    },
  };
});
