// The one mapping from API errors to what a form shows: input validation issues under
// the field they are about, anything else as one message for the whole form. Every form
// uses it (through <ApiError>, <FieldError> and useFormErrors), so no page shows zod's JSON.

export interface Issue {
  path: Array<string | number>;
  message: string;
}

/** An error as tRPC's client gives it (TRPCClientError), or any Error. */
export interface ApiErrorLike {
  message: string;
  data?: { issues?: Issue[] | null; code?: string } | null;
}

export interface FormErrors {
  /** Messages by field path ("name", "labels.env", "targets[0].id"). */
  fields: Record<string, string>;
  /** What is not about one field: the server's message, or issues of fields the form has not claimed. */
  form: string | null;
}

/** "targets[0].id" from ["targets", 0, "id"]. */
export function pathKey(path: ReadonlyArray<string | number>): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? p : `.${p}`)).join("");
}

/** The validation issues of an error: from the server's `data.issues`, else from a message that is zod's JSON list. */
export function issuesOf(error: ApiErrorLike | null | undefined): Issue[] | null {
  if (!error) return null;
  const data = error.data?.issues;
  if (Array.isArray(data) && data.length) return data;
  const m = error.message.trim();
  if (!m.startsWith("[")) return null;
  try {
    const parsed = JSON.parse(m) as unknown;
    if (!Array.isArray(parsed) || !parsed.length) return null;
    const out: Issue[] = [];
    for (const i of parsed as Array<{ path?: unknown; message?: unknown }>) {
      if (typeof i?.message !== "string") return null;
      out.push({
        path: Array.isArray(i.path) ? i.path.filter((p): p is string | number => typeof p === "string" || typeof p === "number") : [],
        message: i.message,
      });
    }
    return out;
  } catch {
    return null;
  }
}

const HUMAN: Record<string, string> = {
  UNAUTHORIZED: "your session ended: sign in again",
  FORBIDDEN: "not allowed for your role",
};

/**
 * Splits an error into field messages and a form message. `fields` lists the paths the
 * form shows under its controls (a prefix claims its children: "labels" claims
 * "labels.env"); issues on other paths go into the form message as "path: message".
 */
export function formErrors(error: ApiErrorLike | null | undefined, fields: readonly string[] = []): FormErrors {
  if (!error) return { fields: {}, form: null };
  const issues = issuesOf(error);
  if (!issues) {
    const m = error.message || HUMAN[error.data?.code ?? ""] || "something went wrong";
    return { fields: {}, form: m };
  }
  const byField: Record<string, string> = {};
  const rest: string[] = [];
  for (const i of issues) {
    const key = pathKey(i.path);
    const owner = fields.find((f) => key === f || key.startsWith(`${f}.`) || key.startsWith(`${f}[`));
    if (owner) {
      if (!byField[owner]) byField[owner] = i.message;
    } else rest.push(key ? `${key}: ${i.message}` : i.message);
  }
  return { fields: byField, form: rest.length ? rest.join("\n") : null };
}

/** Every message of an error as plain text (for places with no fields: a toast, a table action). */
export function errorText(error: ApiErrorLike | null | undefined): string | null {
  const e = formErrors(error);
  return e.form;
}
