package com.recipeml.client;

/** An error answer of the API, with its RFC 9457 problem (status, type, invalid fields). */
public class RecipeMlException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final transient Models.Problem problem;

    public RecipeMlException(Models.Problem problem) {
        super(problem.status() + " " + problem.title() + ": " + problem.detail());
        this.problem = problem;
    }

    public Models.Problem problem() {
        return problem;
    }

    public int status() {
        return problem.status();
    }

    /** True for a 404 whose user is unknown: ask cold-start instead. */
    public boolean isUnknownUser() {
        return "urn:recipe-ml:problem:unknown-user".equals(problem.type());
    }

    /** True for a 404 whose recipe is unknown (similar recipes, or a recipe without a catalogue record). */
    public boolean isUnknownRecipe() {
        return "urn:recipe-ml:problem:unknown-recipe".equals(problem.type());
    }

    /** True for the 409 of a new recipe when the catalogue is full (CATALOGUE_MAX_RECIPES): nothing was applied. */
    public boolean isCatalogueFull() {
        return "urn:recipe-ml:problem:catalogue-full".equals(problem.type());
    }
}
