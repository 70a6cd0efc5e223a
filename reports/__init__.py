"""The impact assessment as a regulator reads it: tables built from the structured
findings, rendered to HTML and to PDF. The Markdown the approvers signed stays the
document of record; these are renderings of the same evidence, plus the sign-offs."""
