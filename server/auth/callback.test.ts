import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { safeCallbackPath } from "./callback";

describe("safeCallbackPath", () => {
  test("same-origin paths pass through unchanged, query strings and fragments included", () => {
    for (const path of ["/", "/deployments", "/invite/inv_abc123", "/deployments?status=running&page=2", "/audit?q=a%2Fb#top", "/members?next=//x"]) {
      assert.equal(safeCallbackPath(path), path);
    }
  });

  test("anything that could leave the site becomes /", () => {
    const attacks = [
      "//evil.example/phish",
      "//evil.example/x",
      "/\\evil.example/x",
      "\\\\evil.example/x",
      "/\t/evil.example/x",
      "/\n/evil.example/x",
      "/\r\n/evil.example",
      "/\u0000/evil.example",
      "https://evil.example/x",
      "javascript:alert(1)",
      "evil.example",
      "",
      " /deployments",
    ];
    for (const value of attacks) assert.equal(safeCallbackPath(value), "/", JSON.stringify(value));
  });

  test("missing or repeated callbackUrl parameters become /", () => {
    assert.equal(safeCallbackPath(undefined), "/");
    assert.equal(safeCallbackPath(["/a", "/b"]), "/");
  });
});
