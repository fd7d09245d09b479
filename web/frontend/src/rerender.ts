// Module state that components follow (the language, the signed-in user, the location): its
// owner keeps a set of listeners and calls them on a change.
import { useEffect, useState } from "preact/hooks";

/** Re-render the calling component whenever the owner of `listeners` calls them. */
export function useRerenderOn(listeners: Set<() => void>): void {
  const [, set] = useState(0);
  useEffect(() => {
    const f = () => set((n) => n + 1);
    listeners.add(f);
    return () => listeners.delete(f);
  }, []);
}
