// OpenCode plugin: records the id of each new session in the file named by TEROK_SESSION_FILE,
// so that a later headless run can resume it. Failures to write are ignored (the record is a
// convenience, never a reason to stop the agent).
import { writeFileSync } from "node:fs";

export const terokSession = async () => ({
  event: async ({ event }) => {
    const file = process.env.TEROK_SESSION_FILE;
    const id = event?.type === "session.created" ? event.properties?.info?.id : undefined;
    if (!file || typeof id !== "string" || id === "") return;
    try {
      writeFileSync(file, id + "\n");
    } catch {
      // best effort
    }
  },
});
