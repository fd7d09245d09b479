"""The official calendar (节假日与调休) as data: public holidays and adjusted working days.

The `holidays` table is the one source every rule reads (seeded from the `chinese-calendar`
package for the years it covers, then edited or imported by region-level admins); processes
that evaluate rules hold it in an in-process :class:`~fleet.holidays.calendar.WorkCalendar`
refreshed when the table changes. A year without rows is *not covered*: rules then fall back
to plain Monday–Friday, and the platform says so (log warning, admin notifications).
"""
