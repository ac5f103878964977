// A real Better Auth server for the service's tests: memory adapter, email and password, jwt plugin.
//
// Configured by the environment, the way a frontend's auth.ts would set these options:
//   BA_ALG                 jwks.keyPairConfig.alg (EdDSA, ES256, ES512, RS256, PS256); default EdDSA
//   BA_BASE_PATH           basePath; default /api/auth
//   BA_JWKS_PATH           jwks.jwksPath; default /jwks
//   BA_AUDIENCE            jwt.audience; default the origin of baseURL
//   BA_ISSUER              jwt.issuer; default the origin of baseURL
//   BA_ROTATION_INTERVAL   jwks.rotationInterval in seconds; default no rotation
//   BA_LIFETIME_SECONDS    exits by itself after this long (default 600), should its parent forget it
// It listens on 127.0.0.1 on a free port and prints one line, `listening <baseURL>`, once it answers.

import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

const env = process.env;

function jwtOptions() {
	const jwks = { keyPairConfig: { alg: env.BA_ALG || "EdDSA" } };
	if (env.BA_JWKS_PATH) jwks.jwksPath = env.BA_JWKS_PATH;
	if (env.BA_ROTATION_INTERVAL) jwks.rotationInterval = Number(env.BA_ROTATION_INTERVAL);
	const claims = {};
	if (env.BA_AUDIENCE) claims.audience = env.BA_AUDIENCE;
	if (env.BA_ISSUER) claims.issuer = env.BA_ISSUER;
	return { jwks, jwt: claims };
}

const server = http.createServer();
server.listen(0, "127.0.0.1", () => {
	const baseURL = `http://127.0.0.1:${server.address().port}`;
	const auth = betterAuth({
		baseURL,
		basePath: env.BA_BASE_PATH || "/api/auth",
		secret: "better-auth-test-server-secret-".padEnd(48, "t"),
		database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
		emailAndPassword: { enabled: true },
		plugins: [jwt(jwtOptions())],
		telemetry: { enabled: false },
		logger: { level: "error" },
	});
	server.on("request", toNodeHandler(auth));
	console.log(`listening ${baseURL}`);
});

setTimeout(() => process.exit(0), Number(env.BA_LIFETIME_SECONDS || 600) * 1000).unref();
process.on("SIGTERM", () => server.close(() => process.exit(0)));
