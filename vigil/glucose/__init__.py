"""Type-1 diabetes care: insulin and carb action curves, glucose forecasts, personalised therapy and advice."""
