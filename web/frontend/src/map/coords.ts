// Display coordinates. Data are WGS-84; GCJ-02 tile providers (AMap, Tencent) draw China
// shifted by a few hundred metres, so everything we draw over them is shifted the same way
// (and clicks are shifted back) with gcoord, a maintained implementation of the transform.
import gcoord from "gcoord";

export type Crs = "wgs84" | "gcj02";
let crs: Crs = "wgs84";

export function setDisplayCrs(c: Crs): void {
  crs = c;
}
export function displayCrs(): Crs {
  return crs;
}

/** WGS-84 [lon, lat] -> the map's display coordinates. */
export function toMap(lon: number, lat: number): [number, number] {
  if (crs === "wgs84") return [lon, lat];
  return gcoord.transform([lon, lat], gcoord.WGS84, gcoord.GCJ02) as [number, number];
}

/** The map's display coordinates -> WGS-84 [lon, lat] (inverse shift, iterative in gcoord). */
export function fromMap(lon: number, lat: number): [number, number] {
  if (crs === "wgs84") return [lon, lat];
  return gcoord.transform([lon, lat], gcoord.GCJ02, gcoord.WGS84) as [number, number];
}

/** Shift a whole GeoJSON object in place when the display is GCJ-02. */
export function geojsonToMap<T extends object>(g: T): T {
  if (crs === "wgs84") return g;
  return gcoord.transform(g as never, gcoord.WGS84, gcoord.GCJ02) as T;
}
