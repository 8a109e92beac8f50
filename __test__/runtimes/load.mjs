// Imports redlock-rs and prints, as one JSON line, whether it loaded, or the error it threw:
// the runtime suites run it where loading must fail (no binary, a Deno permission refused).

try {
  const { default: Redlock } = await import('redlock-rs')
  console.log(JSON.stringify({ loaded: typeof Redlock === 'function' }))
} catch (error) {
  console.log(
    JSON.stringify({
      loaded: false,
      name: error && error.name,
      code: error && error.code,
      message: String(error && error.message),
      cause: error && error.cause ? String(error.cause.message) : null,
      files: error && error.files,
    }),
  )
  process.exitCode = 1
}
