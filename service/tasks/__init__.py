"""TaskFlow's tasks: each user's own, under /api/{user_id}/tasks."""
