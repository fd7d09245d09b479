"""The derive worker: status, trips/stops, daily mileage and point-rule alerts from positions."""
