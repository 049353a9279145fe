"""The conversational agent: chat-model selection, the offline planner and the turn loop."""
