import { defineConfig } from "vite";
import react from "@vitejs/plugin-react";

// `npm run dev` proxies the gateway's API and WebSockets so the UI can be developed against
// `make up` (gateway on :8080); `npm run build` writes dist/, which the gateway serves at "/".
const gateway = process.env.TRADEPLANE_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  base: "./",
  build: { outDir: "dist", emptyOutDir: true, sourcemap: false, chunkSizeWarningLimit: 1000 },
  server: {
    proxy: {
      "/api": gateway,
      "/ws": { target: gateway.replace(/^http/, "ws"), ws: true },
    },
  },
});
