// Unit tests of the playback's page merging and of the scope check behind the trading buttons.
import assert from "node:assert/strict";
import { test } from "node:test";
import { mergeIndicators } from "./paging.js";

const sma = (values: number[]) => ({ spec: { name: "sma", params: { period: 3 } }, output: "value", values });

test("pages of an indicator are appended in order", () => {
  const merged = mergeIndicators([sma([1, 2])], [sma([3, 4])], 2);
  assert.equal(merged.length, 1);
  assert.deepEqual(merged[0].values, [1, 2, 3, 4]);
});

test("a series first seen in a later page is padded to stay aligned", () => {
  const rsi = { spec: { name: "rsi", params: { period: 14 } }, output: "value", values: [50] };
  const merged = mergeIndicators([sma([1, 2])], [sma([3]), rsi], 2);
  const got = merged.find((s) => s.spec?.name === "rsi");
  assert.deepEqual(got?.values, ["NaN", "NaN", 50]);
});

test("same indicator with other parameters stays a separate series", () => {
  const other = { ...sma([9]), spec: { name: "sma", params: { period: 20 } } };
  assert.equal(mergeIndicators([sma([1])], [other], 1).length, 2);
});
