"""Recording of representative `RecipeWorkflow` histories for the replay tests (`make replay-record`)."""
