"""Operating costs, service records with due dates, ratings and the cost-per-km report."""
