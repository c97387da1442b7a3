"""The plan: desired state minus recorded state, computed purely, and rendered as text, JSON or Markdown."""
