// A small typed client built only from the types openapi-typescript generates from the service's
// OpenAPI document. tests/openapi/test_generators.py writes those types to ./api.ts next to a copy
// of this file and runs `tsc --strict` over both: a change to the document that breaks a typed
// frontend (a body that loses `password`, an untyped header) fails that test.
import type { components, operations } from "./api";

type Problem = components["schemas"]["Problem"];
type LoginForm = operations["login"]["requestBody"]["content"]["application/x-www-form-urlencoded"];
// A login answers the token pair, or a two-factor challenge that POST /api/auth/2fa/verify
// turns into the same pair.
type LoginAnswer = operations["login"]["responses"][200]["content"]["application/json"];
type Token = operations["verifyMfa"]["responses"][200]["content"]["application/json"];
type VerifyMfaBody = operations["verifyMfa"]["requestBody"]["content"]["application/json"];
type ListTasksPath = operations["listTasks"]["parameters"]["path"];
type ListTasksQuery = NonNullable<operations["listTasks"]["parameters"]["query"]>;
type TaskPage = operations["listTasks"]["responses"][200];
type Task = TaskPage["content"]["application/json"][number];
type ScanForm = operations["createScan"]["requestBody"]["content"]["multipart/form-data"];
type Scan = operations["createScan"]["responses"][201]["content"]["application/json"];

export class ApiError extends Error {
  constructor(readonly problem: Problem) {
    super(problem.detail);
  }
}

async function parse<T>(response: Response): Promise<T> {
  if (!response.ok) {
    throw new ApiError((await response.json()) as Problem);
  }
  return (await response.json()) as T;
}

export async function login(
  base: string,
  form: LoginForm,
  askForCode: () => Promise<string>,
): Promise<Token> {
  const body = new URLSearchParams();
  for (const [name, value] of Object.entries(form)) {
    if (value !== undefined) body.set(name, value);
  }
  const answer = await parse<LoginAnswer>(await fetch(`${base}/api/auth/login`, { method: "POST", body }));
  if (!("mfa_required" in answer)) return answer;
  const verify: VerifyMfaBody = { mfa_token: answer.mfa_token, code: await askForCode() };
  return parse<Token>(
    await fetch(`${base}/api/auth/2fa/verify`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(verify),
    }),
  );
}

export async function listTasks(
  base: string,
  token: Token,
  path: ListTasksPath,
  query: ListTasksQuery = {},
): Promise<{ tasks: Task[]; total: TaskPage["headers"]["X-Total-Count"] }> {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null) search.set(name, String(value));
  }
  const response = await fetch(`${base}/api/${encodeURIComponent(path.user_id)}/tasks?${search}`, {
    headers: { Authorization: `${token.token_type} ${token.access_token}` },
  });
  const tasks = await parse<Task[]>(response);
  return { tasks, total: Number(response.headers.get("X-Total-Count")) };
}

export async function createScan(
  base: string,
  token: Token,
  form: Omit<ScanForm, "file">,
  document?: File,
): Promise<Scan> {
  const body = new FormData();
  if (document !== undefined) body.set("file", document, document.name);
  if (form.text !== undefined) body.set("text", form.text);
  if (form.force_llm !== undefined) body.set("force_llm", form.force_llm);
  const scan = await parse<Scan>(
    await fetch(`${base}/api/scan`, {
      method: "POST",
      headers: { Authorization: `${token.token_type} ${token.access_token}` },
      body,
    }),
  );
  const risks: string[] = scan.data.map((risk) => `${risk.category}: ${risk.risk}`);
  console.log(scan.scan_id, scan.source, risks);
  return scan;
}

// What the generated types must refuse; tsc fails on an @ts-expect-error that meets no error.
// @ts-expect-error a login form without its password
export const withoutPassword: LoginForm = { username: "ada@example.com" };
// @ts-expect-error X-Total-Count is a number, not text
export const totalAsText: TaskPage["headers"]["X-Total-Count"] = "3";
// @ts-expect-error a scan's source is "llm" or "model"
export const unknownSource: Scan["source"] = "guess";
