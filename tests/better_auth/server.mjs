// Real Better Auth servers for the service's tests: memory adapter, email and password, jwt plugin.
//
// `node server.mjs '<json>'` starts one server per entry of the JSON object, each with its own
// memory database, on 127.0.0.1 and a free port, in this one process (importing better-auth is
// the slow part). An entry sets the options a frontend's auth.ts would:
//   alg               jwks.keyPairConfig.alg (EdDSA, ES256, ES512, RS256, PS256); default EdDSA
//   basePath          basePath; default /api/auth
//   jwksPath          jwks.jwksPath; default /jwks
//   audience, issuer  jwt.audience, jwt.issuer; default the origin of baseURL
//   rotationInterval  jwks.rotationInterval in seconds; default no rotation
// Once a server answers, it prints `listening <name> <baseURL>`. The process exits by itself after
// BA_LIFETIME_SECONDS (default 900), should its parent forget to stop it.

import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { jwt } from "better-auth/plugins";

function jwtOptions(config) {
	const jwks = { keyPairConfig: { alg: config.alg || "EdDSA" } };
	if (config.jwksPath) jwks.jwksPath = config.jwksPath;
	if (config.rotationInterval) jwks.rotationInterval = config.rotationInterval;
	const claims = {};
	if (config.audience) claims.audience = config.audience;
	if (config.issuer) claims.issuer = config.issuer;
	return { jwks, jwt: claims };
}

function start(name, config) {
	const server = http.createServer();
	server.listen(0, "127.0.0.1", () => {
		const baseURL = `http://127.0.0.1:${server.address().port}`;
		const auth = betterAuth({
			baseURL,
			basePath: config.basePath || "/api/auth",
			secret: "better-auth-test-server-secret-".padEnd(48, "t"),
			database: memoryAdapter({ user: [], session: [], account: [], verification: [], jwks: [] }),
			emailAndPassword: { enabled: true },
			plugins: [jwt(jwtOptions(config))],
			telemetry: { enabled: false },
			logger: { level: "error" },
		});
		server.on("request", toNodeHandler(auth));
		console.log(`listening ${name} ${baseURL}`);
	});
	return server;
}

const servers = Object.entries(JSON.parse(process.argv[2] || '{"default": {}}')).map(([name, config]) =>
	start(name, config),
);

setTimeout(() => process.exit(0), Number(process.env.BA_LIFETIME_SECONDS || 900) * 1000).unref();
process.on("SIGTERM", () => {
	for (const server of servers) server.close();
	process.exit(0);
});
