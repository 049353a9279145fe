"""Costs: the price list and interval calculator, job estimates, budgets and the budget advice
the queue gates submissions with, forecasts, reports and savings advice."""
