// docs/clients.md's TypeScript client, as the guide shows it: openapi-fetch over the types
// openapi-typescript generates from the service's OpenAPI document. tests/openapi/test_clients.py
// writes those types to ./api.ts next to a copy of this file and runs `tsc --strict` over both.
import createClient, { type Middleware } from "openapi-fetch";
import type { components, paths } from "./api";

export type Task = components["schemas"]["Task"];
export type Scan = components["schemas"]["Scan"];
export type Problem = components["schemas"]["Problem"];

export const api = createClient<paths>({ baseUrl: "http://127.0.0.1:8000" });

let accessToken: string | undefined;

const bearer: Middleware = {
  async onRequest({ request }) {
    if (accessToken) request.headers.set("Authorization", `Bearer ${accessToken}`);
    return request;
  },
};
api.use(bearer);

// With two-factor sign-in on, a correct password answers a challenge instead of tokens: finish it
// with POST /api/auth/2fa/verify and a code from the user's authenticator app.
export async function signIn(email: string, password: string, askCode: () => Promise<string>): Promise<void> {
  const { data, error } = await api.POST("/api/auth/login", {
    body: { username: email, password },
    // The login form is application/x-www-form-urlencoded (the OAuth2 password grant).
    bodySerializer: (body) => new URLSearchParams(body as Record<string, string>),
  });
  if (error) throw new Error(error.detail);
  if ("access_token" in data) {
    accessToken = data.access_token;
    return;
  }
  const verified = await api.POST("/api/auth/2fa/verify", {
    body: { mfa_token: data.mfa_token, code: await askCode() },
  });
  if (verified.error) throw new Error(verified.error.detail);
  accessToken = verified.data.access_token;
}

export async function openTasks(userId: string): Promise<Task[]> {
  const { data, error } = await api.GET("/api/{user_id}/tasks", {
    params: { path: { user_id: userId }, query: { completed: false, limit: 50 } },
  });
  if (error) throw new Error(error.detail);
  return data.filter((task) => !task.is_completed);
}

export async function addTask(userId: string, title: string): Promise<Task> {
  const { data, error } = await api.POST("/api/{user_id}/tasks", {
    params: { path: { user_id: userId } },
    body: { title },
  });
  if (error) throw new Error(error.detail);
  return data;
}

export async function scanText(text: string): Promise<Scan> {
  const { data, error } = await api.POST("/api/scan", {
    body: { text },
    bodySerializer: (body) => {
      const form = new FormData();
      if (body.text) form.set("text", body.text);
      return form;
    },
  });
  if (error) throw new Error(error.detail);
  return data;
}
