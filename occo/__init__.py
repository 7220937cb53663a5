"""OCCO infrared-visible image fusion."""
