"""Services, storage and interfaces of the orchestrator."""
