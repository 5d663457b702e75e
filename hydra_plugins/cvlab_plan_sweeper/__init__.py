"""cvlab's plan sweeper for Hydra (plan_sweeper.PlanSweeper)."""
